//! Real servers on 127.0.0.1 for tagstrap's integration tests and benchmarks.
//!
//! * [`TestCa`] — a throw-away certificate authority (rcgen) and a leaf for
//!   `127.0.0.1` / `localhost` / `::1`.
//! * [`Origin`] — a small HTTP/1.1 (or HTTPS) origin server with scripted
//!   [`Reply`]s per path, on its own tokio runtime in a background thread.
//! * [`Squid`] — a real `squid` (5.x) forward proxy with optional basic auth
//!   and a TLS (`https_port`) listener.
//! * [`Bao`] — an OpenBao dev server (`bao server -dev`) with a random root
//!   token and helpers to write KV v1/v2 secrets, policies and AppRoles, and
//!   to seal/unseal it, over its HTTP API.
//! * [`BaoCluster`] — a real OpenBao HA cluster (integrated Raft storage,
//!   3 nodes in use) whose nodes can be SIGKILLed to force a failover.
//! * [`FakeMetadata`] — fake AWS IMDSv2, GCE, Azure IMDS and OpenStack
//!   metadata services serving `fixtures/<cloud>/`, enforcing the real
//!   services' header/token rules (and recording what they refuse), plus an
//!   OpenStack config-drive image builder.
//! * [`jwt::SigningKey`] — an RSA key made for the test, RS256 tokens signed
//!   and checked with it, its public key as PEM.
//! * [`FakeSecretManager`], [`FakeKeyVault`] — GCP Secret Manager and Azure
//!   Key Vault as their REST APIs answer, checking the tokens the metadata
//!   fakes issue.
//! * [`Moto`] — a real `moto_server` with request authentication on (SigV4,
//!   keys, session tokens and IAM policies checked), set up with roles,
//!   their temporary credentials, secrets and SSM parameters; and
//!   [`MotoFront`], which stands in front of it to answer
//!   `ExpiredTokenException` or `ThrottlingException` on demand.
//! * [`VaultAwsLogin`] — a stand-in for Vault's `aws` auth method (IAM
//!   login), which replays the signed `sts:GetCallerIdentity` to a
//!   [`Moto`]'s STS as Vault does and grants a token only to the bound role.
//! * [`Relay`] — a TCP relay in front of a server that can run a hook when
//!   the first client connects or inject HTTP request headers.
//! * [`Rootfs`] — a Debian tree (bookworm, trixie, sid) with the real
//!   `cloud-init` (debootstrap, cached under `target/testkit-rootfs/`), one private
//!   overlay per test, commands run in it under `unshare ... chroot`; and
//!   [`static_tagstrap`], the musl build of tagstrap to put in it.
//! * [`nspawn`] — the bookworm systemd tree booted with systemd as PID 1
//!   under `systemd-nspawn` ([`nspawn::Container`]), on the host's network,
//!   stopped with everything in it when the test ends (needs root).
//! * [`netns`] — the boot-time network race for real: an "instance" and a
//!   "cloud" network namespace joined by a veth pair whose link comes up on
//!   demand ([`NetnsPair`]), a real dnsmasq ([`Dnsmasq`]), and [`BootRace`]:
//!   Squid, OpenBao and an HTTPS origin in the cloud, reached by name
//!   (needs root).
//! * [`Wine`] — the Windows `tagstrap.exe` under Debian's wine, one prefix
//!   per test (cached under `target/testkit-wine/`), with a stand-in
//!   `bcryptprimitives.dll` and a recording stand-in `powershell.exe`.
//!
//! * [`artifacts`] — what `.ci/release` built: the .deb and .rpm per
//!   architecture, the aarch64 binary, the man page and completions.
//!
//! Every instance owns its temp dir, its ports and its processes; dropping it
//! kills the processes (and waits for them) and removes the temp dir.
//! Readiness is detected from the servers' own logs or by polling them —
//! never by a fixed sleep. Nothing listens anywhere but 127.0.0.1, except
//! inside the private network namespaces of [`netns`].

pub mod artifacts;
pub mod azure_key_vault;
pub mod bao;
pub mod bao_cluster;
pub mod ca;
pub mod gcp_secret_manager;
pub mod jwt;
pub mod metadata;
pub mod moto;
pub mod netns;
pub mod nspawn;
pub mod origin;
pub mod relay;
pub mod rootfs;
pub mod squid;
mod util;
pub mod vault_aws;
pub mod wine;

pub use azure_key_vault::FakeKeyVault;
pub use bao::Bao;
pub use bao_cluster::{BaoCluster, BaoClusterBuilder};
pub use ca::{IssuedCert, TestCa};
pub use gcp_secret_manager::FakeSecretManager;
pub use metadata::{
    AwsCredentials, AwsRoleSet, Cloud, FakeMetadata, FakeMetadataBuilder, ReservedFakeMetadata,
};
pub use moto::{MadeRole, Moto, MotoBuilder, MotoFront};
pub use netns::{BootRace, Dnsmasq, Forward, LinkUp, Netns, NetnsPair, Outage};
pub use origin::{
    generated_body, generated_byte, Handler, Origin, OriginBuilder, RecordedRequest, Reply,
    ReservedOrigin, GENERATED_CHUNK,
};
pub use relay::Relay;
pub use rootfs::{static_tagstrap, Rootfs};
pub use squid::{Squid, SquidBuilder};
pub use util::{free_port, http_request, HttpResponse};
pub use vault_aws::{VaultAwsBuilder, VaultAwsLogin};
pub use wine::{Wine, WineRun};
