//! SPIRE's services: Init, Config and the WorkloadAttestor itself, which
//! asks the running proctor agent (over its API socket) who a pid is.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use tonic::{Code, Request, Response, Status};

use super::{
    config::PluginConfig,
    pb::{
        config::{
            config_server::{self, Config},
            ConfigureRequest, ConfigureResponse, ValidateRequest, ValidateResponse,
        },
        init::{init_server::Init, DeinitRequest, DeinitResponse, InitRequest, InitResponse},
        workloadattestor::{
            workload_attestor_server::{self, WorkloadAttestor},
            AttestReferenceRequest, AttestReferenceResponse, AttestRequest, AttestResponse,
        },
    },
};
use crate::api::{
    client,
    pb::{AttestRequest as AgentRequest, Identity, ProcessReference},
};

/// The `type_url` of [`ProcessReference`] in a `google.protobuf.Any`.
pub const PROCESS_REFERENCE_TYPE: &str = "type.googleapis.com/proctor.v1.ProcessReference";

/// The SPIFFE Broker API's pid reference, under the package names SPIRE
/// (`spiffe.reference`, go-spiffe) and the Broker API draft
/// (`spiffe.broker`) give it.
pub const PID_REFERENCE_TYPES: [&str; 2] = [
    "type.googleapis.com/spiffe.reference.WorkloadPIDReference",
    "type.googleapis.com/spiffe.broker.WorkloadPIDReference",
];

/// `WorkloadPIDReference { int32 pid = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
struct WorkloadPidReference {
    #[prost(int32, tag = "1")]
    pid: i32,
}

/// What the agent is asked for a reference, or INVALID_ARGUMENT naming the
/// type that is not supported or the value that does not decode.
pub fn agent_request(reference: Option<&prost_types::Any>) -> Result<AgentRequest, Status> {
    use prost::Message;
    let Some(any) = reference else {
        return Err(Status::invalid_argument(
            "AttestReference without a reference; send a proctor.v1.ProcessReference or a \
             WorkloadPIDReference packed in google.protobuf.Any",
        ));
    };
    let bad = |e: prost::DecodeError| {
        Status::invalid_argument(format!("reference {} does not decode: {e}", any.type_url))
    };
    if any.type_url == PROCESS_REFERENCE_TYPE {
        let r = ProcessReference::decode(any.value.as_slice()).map_err(bad)?;
        return Ok(AgentRequest {
            pid: r.pid,
            start_time_ns: r.start_time_ns,
            exec_id: r.exec_id.filter(|e| !e.is_empty()),
        });
    }
    if PID_REFERENCE_TYPES.contains(&any.type_url.as_str()) {
        let r = WorkloadPidReference::decode(any.value.as_slice()).map_err(bad)?;
        return Ok(AgentRequest {
            pid: r.pid,
            ..Default::default()
        });
    }
    Err(Status::invalid_argument(format!(
        "reference type {:?} is not supported; proctor attests {PROCESS_REFERENCE_TYPE} \
         (pid, start_time_ns, exec_id) and {}",
        any.type_url,
        PID_REFERENCE_TYPES.join(", ")
    )))
}

/// Asks the agent, retrying while it has not processed a re-exec yet.
async fn ask_agent(cfg: &PluginConfig, req: AgentRequest) -> Result<Identity, Status> {
    let pid = req.pid;
    let mut tries = 0;
    loop {
        match client::attest_request(&cfg.agent_socket, req.clone()).await {
            Ok(id) => return Ok(id),
            Err(e) => {
                let code = client::code_of(&e);
                if code == Some(Code::Unavailable) && tries < UNAVAILABLE_RETRIES {
                    tries += 1;
                    tokio::time::sleep(UNAVAILABLE_BACKOFF).await;
                    continue;
                }
                // No code: the agent could not be reached at all.
                let code = code.unwrap_or(Code::Unavailable);
                return Err(Status::new(
                    code,
                    format!("proctor could not attest pid {pid}: {e:#}"),
                ));
            }
        }
    }
}

/// The agent answers UNAVAILABLE while it has not yet processed a re-exec it
/// can already see in /proc; such answers are retried this often, this long
/// apart, before SPIRE gets the error.
const UNAVAILABLE_RETRIES: u32 = 10;
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(100);

/// The configuration `Configure` last accepted (None before the first).
#[derive(Clone, Default)]
pub struct Configured(Arc<RwLock<Option<PluginConfig>>>);

impl Configured {
    fn get(&self) -> Result<PluginConfig, Status> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Status::failed_precondition("not configured"))
    }

    fn set(&self, cfg: PluginConfig) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(cfg);
    }
}

/// The selector values SPIRE gets for an identity: those of the configured
/// groups, without the group name (SPIRE names the selector type after the
/// plugin, e.g. `proctor:sha256:...` for a plugin named "proctor").
pub fn selector_values(id: &Identity, cfg: &PluginConfig) -> Vec<String> {
    id.selectors
        .iter()
        .filter(|s| cfg.emits(&s.r#type))
        .map(|s| s.value.clone())
        .collect()
}

/// `spire.service.private.init.v1.Init`.
pub struct InitService;

#[tonic::async_trait]
impl Init for InitService {
    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        tracing::debug!(
            "spire-plugin: host services offered: {:?} (none used)",
            request.get_ref().host_service_names
        );
        Ok(Response::new(InitResponse {
            plugin_service_names: vec![
                workload_attestor_server::SERVICE_NAME.to_string(),
                config_server::SERVICE_NAME.to_string(),
            ],
        }))
    }

    async fn deinit(&self, _: Request<DeinitRequest>) -> Result<Response<DeinitResponse>, Status> {
        Ok(Response::new(DeinitResponse {}))
    }
}

/// `spire.service.common.config.v1.Config`.
pub struct ConfigService {
    pub configured: Configured,
}

#[tonic::async_trait]
impl Config for ConfigService {
    async fn configure(
        &self,
        request: Request<ConfigureRequest>,
    ) -> Result<Response<ConfigureResponse>, Status> {
        let cfg = PluginConfig::parse(&request.get_ref().hcl_configuration)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        // An agent that is not up yet is not a configuration error: SPIRE
        // would refuse to start, and node agents start in any order.
        if let Err(e) = client::connect(&cfg.agent_socket).await {
            tracing::warn!("spire-plugin: {e:#}; attestation fails until the agent answers");
        }
        tracing::info!(
            "spire-plugin: configured: agent socket {}, selector groups {:?}",
            cfg.agent_socket.display(),
            cfg.selector_groups
        );
        self.configured.set(cfg);
        Ok(Response::new(ConfigureResponse {}))
    }

    async fn validate(
        &self,
        request: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        let (valid, notes) = match PluginConfig::parse(&request.get_ref().hcl_configuration) {
            Ok(cfg) => {
                let mut notes = vec!["configuration valid".to_string()];
                if let Err(e) = client::connect(&cfg.agent_socket).await {
                    notes.push(format!("{e:#}"));
                }
                (true, notes)
            }
            Err(e) => (false, vec![format!("{e:#}")]),
        };
        Ok(Response::new(ValidateResponse { valid, notes }))
    }
}

/// `spire.plugin.agent.workloadattestor.v1.WorkloadAttestor`.
pub struct AttestorService {
    pub configured: Configured,
}

#[tonic::async_trait]
impl WorkloadAttestor for AttestorService {
    /// Like SPIRE's unix attestor, a pid that is not a live process is an
    /// error (NOT_FOUND here), not an empty answer; SPIRE then logs that the
    /// "proctor" attestor failed and the workload gets no proctor selectors.
    async fn attest(
        &self,
        request: Request<AttestRequest>,
    ) -> Result<Response<AttestResponse>, Status> {
        let cfg = self.configured.get()?;
        let req = AgentRequest {
            pid: request.get_ref().pid,
            ..Default::default()
        };
        let id = ask_agent(&cfg, req).await?;
        Ok(Response::new(AttestResponse {
            selector_values: selector_values(&id, &cfg),
        }))
    }

    /// A stale reference (the pid now runs another exec, or belongs to a
    /// process that reused it) is NOT_FOUND saying so: SPIRE then fails the
    /// attestation instead of handing the successor this identity.
    async fn attest_reference(
        &self,
        request: Request<AttestReferenceRequest>,
    ) -> Result<Response<AttestReferenceResponse>, Status> {
        let req = agent_request(request.get_ref().reference.as_ref())?;
        let cfg = self.configured.get()?;
        let id = ask_agent(&cfg, req).await?;
        Ok(Response::new(AttestReferenceResponse {
            selector_values: selector_values(&id, &cfg),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::pb::Selector, api::spire_plugin::config::SelectorGroup};

    #[test]
    fn values_of_the_configured_groups_without_the_group() {
        let sel = |t: &str, v: &str| Selector {
            r#type: t.into(),
            value: v.into(),
        };
        let id = Identity {
            selectors: vec![
                sel("unix", "uid:0"),
                sel("k8s", "ns:default"),
                sel("proctor", "exec-sha256:ab"),
            ],
            ..Default::default()
        };
        let all = PluginConfig::default();
        assert_eq!(
            selector_values(&id, &all),
            ["uid:0", "ns:default", "exec-sha256:ab"]
        );
        let some = PluginConfig {
            selector_groups: vec![SelectorGroup::Proctor],
            ..PluginConfig::default()
        };
        assert_eq!(selector_values(&id, &some), ["exec-sha256:ab"]);
    }

    #[test]
    fn references_decode_to_agent_requests_and_unknown_types_are_invalid() {
        use prost::Message;
        let any = |type_url: &str, value: Vec<u8>| prost_types::Any {
            type_url: type_url.into(),
            value,
        };
        let r = ProcessReference {
            pid: 42,
            start_time_ns: Some(7),
            exec_id: Some("e1".into()),
        };
        let req = agent_request(Some(&any(PROCESS_REFERENCE_TYPE, r.encode_to_vec()))).unwrap();
        assert_eq!(
            (req.pid, req.start_time_ns, req.exec_id.as_deref()),
            (42, Some(7), Some("e1"))
        );
        for t in PID_REFERENCE_TYPES {
            let v = WorkloadPidReference { pid: 9 }.encode_to_vec();
            let req = agent_request(Some(&any(t, v))).unwrap();
            assert_eq!((req.pid, req.start_time_ns, req.exec_id), (9, None, None));
        }
        let e = agent_request(Some(&any(
            "type.googleapis.com/google.protobuf.Int32Value",
            vec![],
        )))
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("Int32Value"), "{}", e.message());
        let e = agent_request(Some(&any(PROCESS_REFERENCE_TYPE, vec![0xff]))).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("does not decode"), "{}", e.message());
        assert_eq!(
            agent_request(None).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
