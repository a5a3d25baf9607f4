#!/bin/sh
# Registration entries that pin a workload to the binary the kernel saw it
# execute. Run on the SPIRE server; see README.md in this directory.
#
#   register-workload.sh SHA256 [PARENT_ID]
#
# SHA256 is the workload binary's hash: `sha256sum /path/to/binary`, or the
# "sha256" line of `proctor attest PID` on a node where it runs.
# PARENT_ID is the SPIFFE ID of the node (agent) the entry applies to; the
# default matches every agent that attested with k8s_psat in cluster "prod".
set -eu

sha=${1:?usage: $0 SHA256 [PARENT_ID]}
parent=${2:-spiffe://example.org/spire/agent/k8s_psat/prod}

case "$sha" in
    *[!0-9a-f]*|"") echo "$0: $sha is not a lowercase hex sha256" >&2; exit 2 ;;
esac
[ ${#sha} -eq 64 ] || { echo "$0: $sha is not 64 hex digits" >&2; exit 2; }

# A service on a plain host: this binary, running as uid 1001, whose file has
# not changed since it was executed (proctor only emits sha256 when it has not).
spire-server entry create \
    -parentID "$parent" \
    -spiffeID spiffe://example.org/billing/api \
    -selector "proctor:sha256:$sha" \
    -selector "proctor:uid:1001"

# The same binary in Kubernetes: additionally its namespace and service
# account, and only when the process was seen by the kernel's exec probe (not
# found in /proc when the agent started).
spire-server entry create \
    -parentID "$parent" \
    -spiffeID spiffe://example.org/ns/billing/sa/api \
    -selector "proctor:sha256:$sha" \
    -selector "proctor:ns:billing" \
    -selector "proctor:sa:api" \
    -selector "proctor:attestation:kernel-exec"
