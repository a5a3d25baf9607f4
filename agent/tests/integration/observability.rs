//! The observability kit (deploy/observability, components/prometheusrule) checked with promtool and against a real agent's scrape.
//!
//! promtool comes from Debian's `prometheus` package (`cargo xtask setup`
//! installs it); without it these tests fail naming the package, they never
//! skip. The metric names the dashboard and the alert rules use are taken
//! from their PromQL and must each be in the `/metrics` of a running agent
//! that has seen an exec and a secret read.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use crate::harness::*;

/// Series Prometheus makes itself for every target (not in any scrape).
const SYNTHETIC: &[&str] = &["up"];

fn kit() -> PathBuf {
    repo_root().join("deploy/observability")
}

fn rules_file() -> PathBuf {
    kit().join("prometheus-rules.yaml")
}

fn prometheus_rule_file() -> PathBuf {
    repo_root().join("deploy/kubernetes/components/prometheusrule/prometheusrule.yaml")
}

fn yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Json {
    let path = kit().join("grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Runs promtool with `args`. Missing, it fails the test naming the package
/// (in CI as anywhere else: a check that did not run is not a pass).
fn promtool(args: &[&std::ffi::OsStr]) -> Output {
    match Command::new("promtool").args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed{}: it comes with Debian's `prometheus` package \
             (apt-get install prometheus; `cargo xtask setup` installs it)",
            if std::env::var("CI").as_deref() == Ok("true") {
                " on this CI runner"
            } else {
                ""
            }
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn promtool_ok(args: &[&std::ffi::OsStr]) -> Output {
    let o = promtool(args);
    assert!(
        o.status.success(),
        "promtool {args:?} failed:\n{}",
        text(&o)
    );
    o
}

/// Every rule of a rules document (`groups:` at the top).
fn rules_of(doc: &Yaml) -> Vec<&Yaml> {
    doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .collect()
}

fn alerts_of(doc: &Yaml) -> BTreeMap<String, &Yaml> {
    rules_of(doc)
        .into_iter()
        .filter_map(|r| Some((r["alert"].as_str()?.to_string(), r)))
        .collect()
}

// ------------------------------------------------------------ PromQL ----

/// The metric names a PromQL expression reads: label matchers, strings,
/// ranges, Grafana variables, grouping label lists, functions, keywords and
/// numbers are not names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    #[derive(Debug, PartialEq)]
    enum Tok {
        Ident(String),
        Punct(char),
    }
    let c: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    // Skips from an opening char to its match, over strings.
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => {
                    let q = c[i];
                    i += 1;
                    while i < c.len() && c[i] != q {
                        i += if c[i] == '\\' { 2 } else { 1 };
                    }
                }
                ch if ch == open => depth += 1,
                ch if ch == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let ident_start = |ch: char| ch.is_ascii_alphabetic() || ch == '_' || ch == ':';
    let ident_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    while i < c.len() {
        let ch = c[i];
        if ch == '{' {
            i = skip_group(i, '{', '}');
        } else if ch == '[' {
            i = skip_group(i, '[', ']');
        } else if ch == '"' || ch == '\'' || ch == '`' {
            let q = ch;
            i += 1;
            while i < c.len() && c[i] != q {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ch == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if c.get(i) == Some(&'{') {
                i = skip_group(i, '{', '}');
            } else {
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations (10m, 1e3, 0x1f).
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ident_start(ch) {
            let s = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            toks.push(Tok::Ident(c[s..i].iter().collect()));
        } else {
            if !ch.is_whitespace() {
                toks.push(Tok::Punct(ch));
            }
            i += 1;
        }
    }
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN",
    ];
    let mut names = BTreeSet::new();
    let mut k = 0;
    while k < toks.len() {
        let next_is_paren = toks.get(k + 1) == Some(&Tok::Punct('('));
        // `sum by (k) (...)`: an aggregation with its grouping first.
        let next_is_grouping =
            matches!(toks.get(k + 1), Some(Tok::Ident(w)) if w == "by" || w == "without");
        match &toks[k] {
            Tok::Ident(w) if LABEL_LISTS.contains(&w.as_str()) => {
                if next_is_paren {
                    // Skip the label list up to its ')'.
                    while k < toks.len() && toks[k] != Tok::Punct(')') {
                        k += 1;
                    }
                }
            }
            Tok::Ident(w)
                if KEYWORDS.contains(&w.as_str()) || next_is_paren || next_is_grouping => {}
            Tok::Ident(w) => {
                names.insert(w.clone());
            }
            Tok::Punct(_) => {}
        }
        k += 1;
    }
    names
}

#[test]
fn promql_names_are_found_past_matchers_functions_keywords_and_grafana_variables() {
    let e = r#"(increase(a_total{rule="x{y}",job=~"$job"}[$__rate_interval]) > 0) or on (instance, job) (b:rec unless c offset 10m) and sum by (k) (rate(d_bucket[5m] @ 100)) / ignoring(le) group_left(z) histogram_quantile(0.9, e) * 1e3 + ${x} - inf"#;
    let got = metric_names(e);
    let want: BTreeSet<String> = ["a_total", "b:rec", "c", "d_bucket", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want, "from {e}");
}

// ------------------------------------------------------- alert rules ----

#[test]
fn alert_rules_pass_promtool_check_as_a_file_and_as_the_prometheusrule_spec() {
    let plain = rules_file();
    promtool_ok(&["check".as_ref(), "rules".as_ref(), plain.as_os_str()]);

    // The PrometheusRule carries the very same groups.
    let pr = yaml(&prometheus_rule_file());
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1", "{pr:?}");
    assert_eq!(pr["kind"], "PrometheusRule", "{pr:?}");
    let spec = &pr["spec"];
    assert_eq!(
        spec,
        &yaml(&plain),
        "components/prometheusrule's spec differs from deploy/observability/prometheus-rules.yaml: \
         copy the groups over"
    );
    let dir = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("prometheusrule-spec.yaml");
    std::fs::write(&spec_file, serde_yaml_ng::to_string(spec).unwrap()).unwrap();
    let o = promtool_ok(&["check".as_ref(), "rules".as_ref(), spec_file.as_os_str()]);
    let n = rules_of(spec).len();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("SUCCESS: {n} rules found")),
        "{}",
        text(&o)
    );

    // Negative control: promtool does reject a broken expression.
    let broken = dir.path().join("broken.yaml");
    let src = std::fs::read_to_string(&plain).unwrap();
    std::fs::write(
        &broken,
        src.replacen("proctor_ready == 0", "proctor_ready == ", 1),
    )
    .unwrap();
    let o = promtool(&["check".as_ref(), "rules".as_ref(), broken.as_os_str()]);
    assert!(
        !o.status.success(),
        "promtool accepted a broken rule:\n{}",
        text(&o)
    );

    // ProctorAgentDown selects the job the ServiceMonitor gives the Service.
    let svc = yaml(&repo_root().join("deploy/kubernetes/base/service.yaml"));
    let svc_name = svc["metadata"]["name"].as_str().unwrap();
    let up_expr = alerts_of(spec)["ProctorAgentDown"]["expr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        up_expr.contains(r#"job=~"proctor.*""#) && svc_name.starts_with("proctor"),
        "ProctorAgentDown ({up_expr}) must match the job of Service {svc_name}"
    );
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook_in_the_docs() {
    let doc = yaml(&rules_file());
    let ops = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let alerts = alerts_of(&doc);
    assert!(alerts.len() >= 10, "{:?}", alerts.keys());
    for (name, r) in &alerts {
        let sev = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity label {sev:?}"
        );
        assert!(
            !r["annotations"]["summary"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{name}: no summary"
        );
        let desc = r["annotations"]["description"].as_str().unwrap_or_default();
        let anchor = name.to_lowercase();
        assert!(
            desc.contains(&format!("docs/operations.md#{anchor}")),
            "{name}: the description must point at its runbook: {desc}"
        );
        assert!(
            ops.lines()
                .any(|l| l.starts_with("#### ") && l.trim_start_matches('#').trim() == name),
            "docs/operations.md has no `#### {name}` runbook heading"
        );
    }
    for rule in ["identity-forgery", "secret-exfil"] {
        assert!(
            alerts.values().any(|r| r["expr"]
                .as_str()
                .unwrap()
                .contains(&format!("rule=\"{rule}\""))),
            "no alert on {rule} findings"
        );
    }
}

/// Runs `promtool test rules` on the unit-test file, next to `rules` (a copy
/// of the rules file, possibly mutated).
fn promtool_test(rules: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prometheus-rules.yaml"), rules).unwrap();
    let test = dir.path().join("prometheus-rules.test.yaml");
    std::fs::copy(kit().join("prometheus-rules.test.yaml"), &test).unwrap();
    promtool(&["test".as_ref(), "rules".as_ref(), test.as_os_str()])
}

#[test]
fn every_alert_fires_on_its_synthetic_series_and_stays_silent_on_a_healthy_one() {
    let rules = std::fs::read_to_string(rules_file()).unwrap();
    let o = promtool_test(&rules);
    assert!(o.status.success(), "promtool test rules:\n{}", text(&o));

    // Every alert is tested: a case where it fires, next to a series of the
    // same metric on a node it must not fire for.
    let tests = yaml(&kit().join("prometheus-rules.test.yaml"));
    let doc = yaml(&rules_file());
    for name in alerts_of(&doc).keys() {
        let covered = tests["tests"].as_sequence().unwrap().iter().any(|t| {
            let fired: BTreeSet<&str> = t["alert_rule_test"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|c| c["alertname"] == name.as_str())
                .flat_map(|c| c["exp_alerts"].as_sequence().unwrap().iter())
                .filter_map(|a| a["exp_labels"]["instance"].as_str())
                .collect();
            let silent = t["input_series"].as_sequence().unwrap().iter().any(|s| {
                let series = s["series"].as_str().unwrap();
                !fired
                    .iter()
                    .any(|i| series.contains(&format!("instance=\"{i}\"")))
            });
            !fired.is_empty() && silent
        });
        assert!(
            covered,
            "{name}: prometheus-rules.test.yaml has no case where it fires beside a healthy series"
        );
    }

    // Negative control: the unit tests catch a rule that never fires.
    let dead = rules.replacen("proctor_healthy == 0", "proctor_healthy == 2", 1);
    assert_ne!(dead, rules);
    let o = promtool_test(&dead);
    assert!(
        !o.status.success() && text(&o).contains("ProctorUnhealthy"),
        "the unit tests passed with ProctorUnhealthy disabled:\n{}",
        text(&o)
    );
}

// ---------------------------------------------------------- dashboard ----

/// Every PromQL query of the dashboard: panel targets, and the metric of
/// each `label_values(metric, label)` variable.
fn dashboard_queries(d: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?}", p["title"]),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(def) = v["definition"].as_str() {
            let metric = def
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(m, _)| m)
                .unwrap_or_else(|| panic!("variable {}: not label_values(m, l): {def}", v["name"]));
            out.push((format!("variable {}", v["name"]), metric.to_string()));
        }
    }
    out
}

#[test]
fn dashboard_parses_and_every_panel_has_a_datasource_and_a_valid_query() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs (for import)");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "no DS_PROMETHEUS datasource variable: {vars:?}"
    );
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id: {p}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "panel: {p}");
        let targets = p["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!targets.is_empty(), "panel without a query: {p}");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "target: {t}");
            assert!(
                !t["expr"].as_str().unwrap_or_default().trim().is_empty(),
                "target without expr: {p}"
            );
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");

    // promtool parses every query (as recording rules, Grafana's variables
    // replaced by what Grafana would put there).
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in dashboard_queries(&d).iter().enumerate() {
        let q = q
            .replace("$__rate_interval", "2m")
            .replace("$__range", "6h")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&f, &rules).unwrap();
    let o = promtool(&["check".as_ref(), "rules".as_ref(), f.as_os_str()]);
    assert!(
        o.status.success(),
        "a dashboard query does not parse:\n{}\n{rules}",
        text(&o)
    );
}

// ------------------------------------------------- names in a scrape ----

/// Names a scrape carries: each family (`# TYPE`), with the series names its
/// type implies, and every sample's name.
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in scrape.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (Some(name), Some(kind)) = (w.next(), w.next()) else {
                continue;
            };
            names.insert(name.to_string());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["_sum", "_count", "_created"],
                _ => &[],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !l.starts_with('#') && !l.is_empty() {
            let end = l.find(['{', ' ']).unwrap_or(l.len());
            names.insert(l[..end].to_string());
        }
    }
    names
}

/// Names used in `queries` that are neither in the scrape nor made by
/// Prometheus (`up`, recording rules).
fn unknown_names(
    queries: &[(String, String)],
    scraped: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (whence, q) in queries {
        for n in metric_names(q) {
            if !scraped.contains(&n) && !recorded.contains(&n) && !SYNTHETIC.contains(&n.as_str()) {
                bad.push(format!("{n} (in {whence}: {q})"));
            }
        }
    }
    bad
}

#[test]
fn every_metric_the_dashboard_and_the_rules_use_is_in_a_real_agents_scrape() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    // A fake key pair, assembled at run time so no credential-shaped literal
    // sits in the source.
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = {}{}\naws_secret_access_key = {}{}\n",
            "AKIA", "Q3ZX7M2V9K4J8P1R", "t5Wz0Lk3Vw7Tn2", "Hy5Bc9Xm4Ps1Dj6Gf0Ua8Ei3Oq"
        ),
    )
    .unwrap();
    let config = format!(
        "status_interval: 1s\n{TEST_METRICS}state_dir: {}\n\
         secrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
        state.path().display(),
        home.path().display()
    );
    let agent = AgentProc::start(&config);
    let started =
        agent.wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "started");
    let addr = started["status"]["metrics_listen"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics_listen in {started}"))
        .to_string();

    // An exec and a secret read, so their counters exist.
    let m = marker("obs-scrape");
    run(Command::new("/bin/cat")
        .arg(aws.join("credentials"))
        .arg0(&m));
    let finding = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let (code, body) = http_get(&addr, "/metrics");
        assert_eq!(code, 200, "{body}");
        let has = |prefix: &str| body.lines().any(|l| l.starts_with(prefix));
        if has(r#"proctor_findings_total{rule="secret-read","#)
            && has(r#"proctor_events_total{kind="process_exec"}"#)
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the scrape never showed the secret-read finding ({finding}):\n{body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let scraped = scraped_names(&scrape);
    for n in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "proctor_ready",
        "proctor_healthy",
    ] {
        assert!(
            scraped.contains(n),
            "{n} missing from the scrape:\n{scrape}"
        );
    }

    let doc = yaml(&rules_file());
    let recorded: BTreeSet<String> = rules_of(&doc)
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect();
    let mut queries: Vec<(String, String)> = rules_of(&doc)
        .iter()
        .map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
            (
                format!("rule {name}"),
                r["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    queries.extend(dashboard_queries(&dashboard()));
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, q)| metric_names(q)).collect();
    assert!(
        used.contains("proctor_kernel_dropped_total")
            && used.contains("proctor_pipeline_oldest_pending_seconds"),
        "the name parser found too little: {used:?}"
    );
    let bad = unknown_names(&queries, &scraped, &recorded);
    assert!(
        bad.is_empty(),
        "metric names not in the agent's scrape:\n{}\n--- scrape ---\n{scrape}",
        bad.join("\n")
    );

    // Negative control: a misspelt name is caught.
    let typo = vec![(
        "typo".to_string(),
        "rate(proctor_evnts_total[5m])".to_string(),
    )];
    assert_eq!(
        unknown_names(&typo, &scraped, &recorded).len(),
        1,
        "a misspelt metric name went unnoticed"
    );
}
