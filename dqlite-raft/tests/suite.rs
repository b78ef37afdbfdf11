//! openraft's storage conformance suite on [`LogStore`] + [`StateMachineStore`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dqlite_raft::log_store::{LogConfig, LogStore};
use dqlite_raft::state_machine::StateMachineStore;
use dqlite_raft::testing::{DigestStateMachine, TestConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

struct Builder;

type Sm = StateMachineStore<TestConfig, DigestStateMachine>;

fn err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(ErrorSubject::Store, ErrorVerb::Read, AnyError::new(&e)),
    }
}

impl StoreBuilder<TestConfig, LogStore<TestConfig>, Sm, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TestConfig>, Sm), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(err)?;
        let config = LogConfig {
            // Small segments so that the suite also crosses segment boundaries.
            segment_size: 8192,
            cache_bytes: 1024,
            ..LogConfig::default()
        };
        let (log, _) = LogStore::open(&dir.path().join("log"), config).map_err(err)?;
        let sm =
            StateMachineStore::open(&dir.path().join("snapshots"), DigestStateMachine::default())
                .await
                .map_err(err)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("openraft=info")
        .with_test_writer()
        .try_init();
    Suite::test_all(Builder).unwrap();
}
