//! The test-suite operations (docs/testing-with-kvs-signaling.md): emptying the whole server
//! between tests ([`Application::reset`]) and counting what it holds ([`Application::state`]).
//! The wire layer offers them only in open mode (`POST /_kvs/reset`, `GET /_kvs/state`).
//!
//! A reset goes through the same path as a delete for every channel's connections and held
//! messages ([`crate::relay::Hub::channel_gone`]): presence is dropped and later claims refused
//! cluster-wide, held messages are dropped, and GO_AWAY reaches the channel's connections on
//! every node. Unlike a delete it leaves no grace: the connections close right after their
//! GO_AWAY, so the next test starts from nothing.

use std::collections::HashSet;
use std::time::Duration;

use crate::app::Application;
use crate::error::ServiceError;

/// How long a reset waits for this node's connections on the removed channels to close after
/// their GO_AWAY (each session closes its socket as soon as it has written the frame).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// What a reset removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Channels removed, of every account and region, whatever their status.
    pub channels: usize,
    /// Held messages dropped with them.
    pub held_messages: usize,
    /// Streams removed, of every account and region, with every media-storage link.
    pub streams: usize,
}

/// What the server holds (`GET /_kvs/state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerState {
    /// Channels of every account and region that exist for clients (a channel whose delete
    /// completed but is not purged yet is not counted).
    pub channels: usize,
    /// Masters connected to this node.
    pub masters: usize,
    /// Viewers connected to this node.
    pub viewers: usize,
    /// Messages held (on every node: held messages live in the shared store) for recipients
    /// that are not connected, on the channels counted.
    pub held_messages: usize,
}

impl Application {
    /// Empties the server: every channel of every account and region, their held messages
    /// and presence; their connections get GO_AWAY and are closed. Waits (up to two seconds)
    /// for this node's connections on them to be gone, so a state read right after counts none.
    pub async fn reset(&self) -> Result<ResetReport, ServiceError> {
        let removed = self.channels().clear_all().await?;
        let streams = self.streams().clear_all().await?;
        let mut report = ResetReport {
            channels: removed.len(),
            held_messages: 0,
            streams,
        };
        let mut incomplete = None;
        for channel in &removed {
            let arn = channel.arn.as_str();
            report.held_messages += self.hub().held_count(arn).await;
            if let Err(e) = self.hub().channel_gone(arn, Duration::ZERO).await {
                tracing::error!(error = %e, channel = %arn, "GO_AWAY on reset incomplete");
                incomplete = Some(e);
            }
        }
        let arns: HashSet<&str> = removed.iter().map(|c| c.arn.as_str()).collect();
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while self.hub().connections_on(&arns) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(CLOSE_POLL).await;
        }
        match incomplete {
            Some(e) => Err(ServiceError::Unavailable(format!(
                "Every channel was removed, but some connections could not be told ({e}); they \
                 close at their idle timeout."
            ))),
            None => Ok(report),
        }
    }

    /// Counts channels (all accounts and regions), this node's connections by role, and the
    /// messages held on those channels.
    pub async fn state(&self) -> Result<ServerState, ServiceError> {
        let channels = self.channels().all_channels().await?;
        let mut held_messages = 0;
        for c in &channels {
            held_messages += self.hub().held_count(c.arn.as_str()).await;
        }
        let (masters, viewers) = self.hub().connections_by_role();
        Ok(ServerState {
            channels: channels.len(),
            masters,
            viewers,
            held_messages,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::app::SignalingPorts;
    use crate::clock::ManualClock;
    use crate::ids::{AccountId, ChannelName, MessageTtl, Namespace, Region};
    use crate::model::ChannelType;
    use crate::relay::{ChannelSink, ClientMessage, Event, HubConfig, NodeId, Role};
    use crate::service::{CreateChannel, ServiceConfig};
    use crate::store::MemoryStore;

    fn app() -> Application {
        Application::new(
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(1_700_000_000_000)),
            ServiceConfig::default(),
            HubConfig::default(),
            NodeId(1),
            SignalingPorts::in_process(),
        )
    }

    fn ns(account: &str, region: &str) -> Namespace {
        Namespace::new(
            AccountId::parse(account).unwrap(),
            Region::parse(region).unwrap(),
        )
    }

    async fn create(app: &Application, ns: &Namespace, name: &str) -> crate::model::Channel {
        app.channels()
            .create(
                ns,
                CreateChannel {
                    name: ChannelName::parse("n", name).unwrap(),
                    channel_type: ChannelType::SingleMaster,
                    ttl: MessageTtl::DEFAULT,
                    tags: vec![],
                },
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn reset_empties_every_namespace_drops_held_and_sends_go_away() {
        let app = app();
        let a = ns("111111111111", "us-east-1");
        let b = ns("222222222222", "eu-west-1");
        let cam = create(&app, &a, "cam").await;
        create(&app, &b, "other").await;
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let master = app
            .connect(&a, &cam.arn, Role::Master, Arc::new(ChannelSink(tx)))
            .await
            .unwrap();
        master.activate().await;
        // A message for a viewer that is not connected is held.
        app.relay(
            master.id(),
            ClientMessage::parse(
                r#"{"action":"SDP_OFFER","messagePayload":"eA==","recipientClientId":"v1"}"#,
            )
            .unwrap(),
        )
        .await
        .unwrap();
        let before = app.state().await.unwrap();
        assert_eq!(
            before,
            ServerState {
                channels: 2,
                masters: 1,
                viewers: 0,
                held_messages: 1
            }
        );
        // The sink's receiver is this test: drop the registration as a session would on close.
        let closer = tokio::spawn(async move {
            let got = rx.recv().await;
            drop(master);
            got
        });
        let report = app.reset().await.unwrap();
        assert_eq!(
            report,
            ResetReport {
                channels: 2,
                held_messages: 1,
                streams: 0
            }
        );
        assert!(matches!(
            closer.await.unwrap(),
            Some(Event::GoAway { grace }) if grace == Duration::ZERO
        ));
        assert_eq!(app.state().await.unwrap(), ServerState::default());
        for n in [&a, &b] {
            let page = app.channels().list(n, None, 100, None).await.unwrap();
            assert!(page.channels.is_empty());
        }
        // The names are free again.
        create(&app, &a, "cam").await;
    }
}
