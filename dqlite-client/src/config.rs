//! Client settings.

use std::time::Duration;

/// Timeouts, retry bounds and limits of a [`crate::Client`].
///
/// Every wait is bounded: a dead or silent node costs at most `connect_timeout` or
/// `request_timeout`, and looking for a leader gives up after `leader_timeout` with
/// [`crate::Error::NoLeader`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Longest wait for a TCP/Unix connect (and TLS handshake). Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for one response message, and for writing one request. Default 30 s.
    pub request_timeout: Duration,
    /// Longest time spent finding a leader (and retrying a refused request on a new one) before
    /// giving up. Default 30 s (a C dqlite election takes 3-6 s).
    pub leader_timeout: Duration,
    /// First retry delay; doubles up to `backoff_cap`, with jitter. Default 50 ms.
    pub backoff_base: Duration,
    /// Longest retry delay. Default 1 s.
    pub backoff_cap: Duration,
    /// Largest response body accepted, in bytes (a larger one is a protocol error, checked
    /// before anything is allocated for it). Default 64 MiB.
    pub max_response_body: usize,
    /// Client id sent in the CLIENT request after the leader is found. Default 0 (as go-dqlite).
    pub client_id: u64,
    /// TLS settings (feature `tls`); `None` = plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            leader_timeout: Duration::from_secs(30),
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_secs(1),
            max_response_body: 64 * 1024 * 1024,
            client_id: 0,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Config {
    pub(crate) fn dial_options(&self) -> crate::transport::DialOptions {
        crate::transport::DialOptions {
            connect_timeout: self.connect_timeout,
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        }
    }

    pub(crate) fn limits(&self) -> crate::conn::ConnLimits {
        crate::conn::ConnLimits {
            read_timeout: self.request_timeout,
            write_timeout: self.request_timeout,
            max_body: self.max_response_body,
        }
    }

    pub(crate) fn backoff(&self) -> crate::Backoff {
        crate::Backoff::new(self.backoff_base, self.backoff_cap)
    }
}
