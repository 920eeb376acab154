//! Shapes shared by several resource kinds: durations, metadata, port mappings, health checks,
//! TLS, logging and HTTP match criteria.
//!
//! Struct fields are declared in alphabetical order of their JSON names: serde serializes in
//! declaration order, and App Mesh prints keys alphabetically (reference §1 "Key order").

use serde::{Deserialize, Serialize};

use super::macros::{str_enum, union};

/// `maxPendingRequests` when an HTTP connection pool leaves it out (reference §3.3).
pub const DEFAULT_MAX_PENDING_REQUESTS: i64 = 2_147_483_647;
/// Per-request timeout when a listener or route leaves it out (reference §3.6).
pub const DEFAULT_PER_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Idle timeout when a listener or route leaves it out (reference §3.6).
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

str_enum! {
    /// `Duration.unit`.
    pub enum DurationUnit {
        /// Seconds.
        S = "s",
        /// Milliseconds.
        Ms = "ms",
    }
}

/// App Mesh `Duration`: `{"unit": "s" | "ms", "value": n}`. Both members are required here (as in
/// the Kubernetes controller); `value` must be ≥ 0 after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Duration {
    /// `s` or `ms`.
    pub unit: DurationUnit,
    /// Amount of `unit`; ≥ 0.
    pub value: i64,
}

/// A timestamp as App Mesh prints it: epoch seconds (CLI v1, wire) or ISO 8601 text (CLI v2).
/// Kept exactly as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    /// Epoch seconds, e.g. `1563809909.282`.
    Epoch(serde_json::Number),
    /// ISO 8601 text, e.g. `2022-04-06T10:42:42.015000-05:00`.
    Text(String),
}

/// `metadata` of describe output. Every member is optional here so that hand-edited files load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceMetadata {
    /// ARN, e.g. `arn:aws:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<vn>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Creation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Time of the last update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<Timestamp>,
    /// Account that owns the mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Account that owns the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_owner: Option<String>,
    /// Unique id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Starts at 1, incremented on every update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

str_enum! {
    /// `status.status` of describe output.
    pub enum StatusCode {
        /// In use.
        Active = "ACTIVE",
        /// Not in use.
        Inactive = "INACTIVE",
        /// Deleted (returned by delete calls).
        Deleted = "DELETED",
    }
}

/// `status` of describe output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceStatus {
    /// The status code.
    pub status: StatusCode,
}

/// One entry of `tags`: key 1–128 characters, value 0–256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagRef {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

str_enum! {
    /// `portMapping.protocol` and `healthCheck.protocol`.
    pub enum PortProtocol {
        /// HTTP/1.1 (websockets allowed).
        Http = "http",
        /// HTTP/2.
        Http2 = "http2",
        /// gRPC.
        Grpc = "grpc",
        /// Plain TCP.
        Tcp = "tcp",
    }
}

/// `portMapping`: port 1–65535 and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    /// Port, 1–65535 after validation.
    pub port: i64,
    /// Protocol.
    pub protocol: PortProtocol,
}

/// `healthCheck` (`HealthCheckPolicy`). Ranges: interval 5000–300000 ms, timeout 2000–60000 ms,
/// thresholds 2–10, port 1–65535 and equal to the listener port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckPolicy {
    /// Consecutive successes before a host is healthy, 2–10.
    pub healthy_threshold: i64,
    /// Time between checks in milliseconds, 5000–300000.
    pub interval_millis: i64,
    /// Request path; used for `http`/`http2` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Port to check; when absent, the listener port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Protocol of the check.
    pub protocol: PortProtocol,
    /// Time to wait for a response in milliseconds, 2000–60000.
    pub timeout_millis: i64,
    /// Consecutive failures before a host is unhealthy, 2–10.
    pub unhealthy_threshold: i64,
}

/// `timeout.http` / `timeout.http2` / `timeout.grpc` of a listener, and a route's `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTimeout {
    /// Idle timeout; default 300 s; 0 disables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Duration>,
    /// Per-request timeout; default 15 s; 0 disables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_request: Option<Duration>,
}

/// gRPC timeouts have the same members as HTTP ones.
pub type GrpcTimeout = HttpTimeout;

/// `timeout.tcp` of a listener, and a TCP route's `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpTimeout {
    /// Idle timeout; default 300 s; 0 disables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Duration>,
}

// --- TLS ---------------------------------------------------------------------------------------

str_enum! {
    /// `tls.mode` of a listener.
    pub enum ListenerTlsMode {
        /// Only TLS accepted.
        Strict = "STRICT",
        /// TLS and plain text accepted.
        Permissive = "PERMISSIVE",
        /// No TLS.
        Disabled = "DISABLED",
    }
}

/// `certificate.acm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsAcmCertificate {
    /// ARN of the ACM certificate.
    pub certificate_arn: String,
}

/// `certificate.file`: paths 1–255 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsFileCertificate {
    /// Path of the certificate chain (PEM).
    pub certificate_chain: String,
    /// Path of the private key (PEM).
    pub private_key: String,
}

/// `certificate.sds` / `trust.sds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSdsSecret {
    /// Name of the SDS secret.
    pub secret_name: String,
}

/// `trust.file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsFileTrust {
    /// Path of the CA bundle (PEM), 1–255 characters.
    pub certificate_chain: String,
}

/// `trust.acm` (client policies only): 1–3 CA ARNs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsAcmTrust {
    /// ARNs of ACM private CAs, 1–3.
    pub certificate_authority_arns: Vec<String>,
}

union! {
    /// A listener's `tls.certificate`: `acm` | `file` | `sds`.
    pub enum ListenerTlsCertificate {
        /// ACM certificate.
        Acm(TlsAcmCertificate) = "acm",
        /// Local files.
        File(TlsFileCertificate) = "file",
        /// SDS secret.
        Sds(TlsSdsSecret) = "sds",
    }
}

union! {
    /// A client policy's `tls.certificate`: `file` | `sds`.
    pub enum ClientTlsCertificate {
        /// Local files.
        File(TlsFileCertificate) = "file",
        /// SDS secret.
        Sds(TlsSdsSecret) = "sds",
    }
}

union! {
    /// A listener's `tls.validation.trust`: `file` | `sds`.
    pub enum ListenerTlsValidationContextTrust {
        /// Local CA bundle.
        File(TlsFileTrust) = "file",
        /// SDS secret.
        Sds(TlsSdsSecret) = "sds",
    }
}

union! {
    /// A client policy's `tls.validation.trust`: `acm` | `file` | `sds`.
    pub enum TlsValidationContextTrust {
        /// ACM private CAs.
        Acm(TlsAcmTrust) = "acm",
        /// Local CA bundle.
        File(TlsFileTrust) = "file",
        /// SDS secret.
        Sds(TlsSdsSecret) = "sds",
    }
}

/// `subjectAlternativeNames.match`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectAlternativeNameMatchers {
    /// Exact names, each 1–254 characters.
    pub exact: Vec<String>,
}

/// `subjectAlternativeNames`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectAlternativeNames {
    /// The matchers.
    pub r#match: SubjectAlternativeNameMatchers,
}

/// A listener's `tls.validation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTlsValidationContext {
    /// Accepted peer names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_alternative_names: Option<SubjectAlternativeNames>,
    /// Trusted CAs.
    pub trust: ListenerTlsValidationContextTrust,
}

/// A listener's `tls` (virtual node and virtual gateway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTls {
    /// The server certificate.
    pub certificate: ListenerTlsCertificate,
    /// `STRICT`, `PERMISSIVE` or `DISABLED`.
    pub mode: ListenerTlsMode,
    /// Client certificate validation (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ListenerTlsValidationContext>,
}

/// A client policy's `tls.validation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsValidationContext {
    /// Accepted peer names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_alternative_names: Option<SubjectAlternativeNames>,
    /// Trusted CAs.
    pub trust: TlsValidationContextTrust,
}

/// `clientPolicy.tls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientPolicyTls {
    /// Client certificate for mutual TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ClientTlsCertificate>,
    /// Whether TLS is enforced; default true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
    /// Ports TLS applies to (1–65535); all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<i64>>,
    /// Server certificate validation.
    pub validation: TlsValidationContext,
}

/// `clientPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientPolicy {
    /// TLS towards the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientPolicyTls>,
}

/// `backendDefaults` (virtual node and virtual gateway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendDefaults {
    /// Default client policy for all backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_policy: Option<ClientPolicy>,
}

// --- logging -----------------------------------------------------------------------------------

/// One `{key, value}` of a JSON access-log format; key 1–100, value 1–100 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonFormatRef {
    /// JSON key in the log line.
    pub key: String,
    /// Envoy format string, e.g. `%RESPONSE_CODE%`.
    pub value: String,
}

union! {
    /// `file.format`: `json` | `text`.
    pub enum LoggingFormat {
        /// A JSON object per line.
        Json(Vec<JsonFormatRef>) = "json",
        /// An Envoy format string, 1–1000 characters.
        Text(String) = "text",
    }
}

/// `accessLog.file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileAccessLog {
    /// Line format; Envoy's default format when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LoggingFormat>,
    /// File path, 1–255 characters, e.g. `/dev/stdout`.
    pub path: String,
}

union! {
    /// `logging.accessLog`: only `file`.
    pub enum AccessLog {
        /// Log to a file.
        File(FileAccessLog) = "file",
    }
}

/// `logging`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logging {
    /// Access log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
}

// --- HTTP matching -----------------------------------------------------------------------------

str_enum! {
    /// `match.method`.
    pub enum HttpMethod {
        /// GET
        Get = "GET",
        /// HEAD
        Head = "HEAD",
        /// POST
        Post = "POST",
        /// PUT
        Put = "PUT",
        /// DELETE
        Delete = "DELETE",
        /// CONNECT
        Connect = "CONNECT",
        /// OPTIONS
        Options = "OPTIONS",
        /// TRACE
        Trace = "TRACE",
        /// PATCH
        Patch = "PATCH",
    }
}

/// `match.range` of a header or metadata match: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchRange {
    /// End (exclusive); greater than `start`.
    pub end: i64,
    /// Start (inclusive).
    pub start: i64,
}

union! {
    /// `headers[].match` / `metadata[].match`: exactly one method, strings 1–255 characters.
    pub enum HeaderMatchMethod {
        /// Equal to.
        Exact(String) = "exact",
        /// Starts with.
        Prefix(String) = "prefix",
        /// Integer value in `[start, end)`.
        Range(MatchRange) = "range",
        /// Matches the regular expression (whole value).
        Regex(String) = "regex",
        /// Ends with.
        Suffix(String) = "suffix",
    }
}

/// `match.headers[]` (and gRPC `match.metadata[]`): name 1–50 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteHeader {
    /// Match when the header does *not* match; default false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
    /// How to match; when absent, the header only has to be present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#match: Option<HeaderMatchMethod>,
    /// Header (or metadata) name.
    pub name: String,
}

/// gRPC metadata matches have the same members as HTTP header matches.
pub type GrpcRouteMetadata = HttpRouteHeader;

union! {
    /// `match.path`: `exact` | `regex`, 1–255 characters.
    pub enum HttpPathMatch {
        /// The path equals this.
        Exact(String) = "exact",
        /// The path matches this regular expression (whole path).
        Regex(String) = "regex",
    }
}

/// `queryParameters[].match`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryParameterMatch {
    /// The parameter value equals this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

/// `match.queryParameters[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpQueryParameter {
    /// How to match; when absent, the parameter only has to be present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#match: Option<QueryParameterMatch>,
    /// Parameter name.
    pub name: String,
}

// === impl Duration ===

impl Duration {
    /// The duration as `std::time::Duration`; a negative value (rejected by validation) is zero.
    pub fn to_std(&self) -> std::time::Duration {
        let value = u64::try_from(self.value).unwrap_or(0);
        match self.unit {
            DurationUnit::S => std::time::Duration::from_secs(value),
            DurationUnit::Ms => std::time::Duration::from_millis(value),
        }
    }
}

// === impl PortMapping ===

impl PortMapping {
    /// The port as `u16`; values outside 1–65535 (rejected by validation) give 0.
    pub fn port_u16(&self) -> u16 {
        u16::try_from(self.port).unwrap_or(0)
    }
}

// === impl HttpTimeout ===

impl HttpTimeout {
    /// `perRequest`, or 15 s when absent. Zero means "disabled".
    pub fn per_request_or_default(&self) -> std::time::Duration {
        self.per_request
            .map_or(DEFAULT_PER_REQUEST_TIMEOUT, |d| d.to_std())
    }

    /// `idle`, or 300 s when absent. Zero means "disabled".
    pub fn idle_or_default(&self) -> std::time::Duration {
        self.idle.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.to_std())
    }
}

// === impl TcpTimeout ===

impl TcpTimeout {
    /// `idle`, or 300 s when absent. Zero means "disabled".
    pub fn idle_or_default(&self) -> std::time::Duration {
        self.idle.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.to_std())
    }
}

// === impl ClientPolicyTls ===

impl ClientPolicyTls {
    /// `enforce`, or true when absent.
    pub fn enforce_or_default(&self) -> bool {
        self.enforce.unwrap_or(true)
    }
}
