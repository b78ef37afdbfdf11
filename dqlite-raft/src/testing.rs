//! A small state machine and type configuration for tests, benches and examples (feature
//! `testing`; not part of the stable API).
//!
//! [`DigestStateMachine`] folds every applied payload into a running checksum, so two replicas
//! that applied the same entries in the same order have the same [`Digest`], whatever the log
//! length, in constant memory.

use openraft::EntryPayload;
use serde::{Deserialize, Serialize};

use crate::snapshot::SnapshotPayload;
use crate::state_machine::{SmError, StateMachine};

openraft::declare_raft_types!(
    /// Type configuration used by this crate's tests: payloads are byte vectors, the response
    /// is the number of payloads applied so far.
    pub TestConfig:
        D = Vec<u8>,
        R = u64,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TestConfig>,
        SnapshotData = crate::snapshot::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The whole state of a [`DigestStateMachine`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Number of application payloads applied.
    pub count: u64,
    /// CRC32C chained over every payload, in order.
    pub crc: u32,
}

/// A state machine that only remembers a [`Digest`] of what it applied.
#[derive(Debug, Default, Clone)]
pub struct DigestStateMachine {
    /// Current state.
    pub digest: Digest,
}

impl StateMachine<TestConfig> for DigestStateMachine {
    type Snapshot = Vec<u8>;

    async fn apply(
        &mut self,
        entries: Vec<openraft::Entry<TestConfig>>,
    ) -> Result<Vec<u64>, SmError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if let EntryPayload::Normal(data) = &e.payload {
                self.digest.count += 1;
                self.digest.crc = crc32c::crc32c_append(self.digest.crc, data);
            }
            out.push(self.digest.count);
        }
        Ok(out)
    }

    async fn snapshot(&mut self) -> Result<Vec<u8>, SmError> {
        Ok(postcard::to_stdvec(&self.digest)?)
    }

    async fn restore(&mut self, payload: SnapshotPayload) -> Result<(), SmError> {
        let bytes = payload.into_vec()?;
        self.digest = postcard::from_bytes(&bytes)?;
        Ok(())
    }
}
