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
use crate::api::{client, pb::Identity};

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
        let pid = request.get_ref().pid;
        let mut tries = 0;
        let id = loop {
            match client::attest(&cfg.agent_socket, pid).await {
                Ok(id) => break id,
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
        };
        Ok(Response::new(AttestResponse {
            selector_values: selector_values(&id, &cfg),
        }))
    }

    async fn attest_reference(
        &self,
        _: Request<AttestReferenceRequest>,
    ) -> Result<Response<AttestReferenceResponse>, Status> {
        Err(Status::unimplemented(
            "proctor attests by pid only (Attest); reference-based attestation is not implemented",
        ))
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
}
