//! The application layer: the one place every plane calls — the control-plane handlers, the
//! signaling WebSocket, the HTTPS data plane and the console. It answers "is this channel
//! usable" once (one error per case, as AWS gives it, [`Purpose`]), connects and disconnects
//! signaling connections, relays their messages, and deletes channels so that their
//! connections hear GO_AWAY wherever they are (docs/protocol.md §6.4).
//!
//! Channel reads come from the store's in-memory index (no blocking hop); the relay asks for a
//! channel's TTL only when a message must be held ([`ChannelTtl`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::error::{ErrorCode, ServiceError};
use crate::ids::{Namespace, ResourceArn, Version};
use crate::model::{Channel, ChannelStatus};
use crate::relay::bus::{Bus, MemoryBus};
use crate::relay::held::{HeldMessages, MemoryHeld};
use crate::relay::presence::{MemoryPresence, Presence};
use crate::relay::{
    Action, ChannelSink, ChannelTtl, ClientMessage, ConnectionId, Event, Hub, HubConfig, HubPorts,
    NodeId, Registration, Relayed, Role, SignalError, Sink,
};
use crate::service::{ChannelService, ChannelView, ServiceConfig};
use crate::store::Store;
use crate::streams::{MemoryStreamStore, StreamConfig, StreamService, StreamStore};

/// Why a caller needs the channel; AWS answers a channel that is missing or not ACTIVE
/// differently for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// GetSignalingChannelEndpoint: 404 when missing, ResourceInUseException when not ACTIVE.
    Endpoint,
    /// ConnectAsMaster / ConnectAsViewer: 404 when missing, 400 ResourceInUseException when
    /// not ACTIVE (docs/protocol.md §6.1).
    Connect,
    /// GetIceServerConfig, SendAlexaOfferToMaster: 404 "not found or not active" for both.
    DataPlane,
}

/// The ports the relay runs on: in-process by default, Redis when several nodes share state.
pub struct SignalingPorts {
    pub presence: Arc<dyn Presence>,
    pub held: Arc<dyn HeldMessages>,
    pub bus: Arc<dyn Bus>,
    /// The live view's feed between nodes (docs/console.md).
    pub feed: Arc<dyn crate::relay::watch::Feed>,
}

impl SignalingPorts {
    /// One node, everything in this process.
    pub fn in_process() -> Self {
        Self {
            presence: Arc::new(MemoryPresence::new()),
            held: Arc::new(MemoryHeld::new()),
            bus: Arc::new(MemoryBus::new()),
            feed: Arc::new(crate::relay::watch::MemoryFeed::new()),
        }
    }
}

pub struct Application {
    channels: Arc<ChannelService>,
    /// Streams and the channels' media-storage links (issue 15).
    streams: Arc<StreamService>,
    hub: Arc<Hub>,
    throttle: crate::quota::Throttle,
}

/// The relay's view of channel TTLs, answered from the channel index.
struct ServiceTtl(Arc<ChannelService>);

#[async_trait]
impl ChannelTtl for ServiceTtl {
    async fn ttl_seconds(&self, channel_arn: &str) -> Option<u32> {
        let arn = ResourceArn::parse("ChannelARN", channel_arn).ok()?;
        let ns = Namespace::from_arn(&arn)?;
        let view = self.0.get_by_arn(&ns, &arn).await.ok()?;
        // A channel being deleted holds nothing (its held messages were dropped at the delete).
        if view.status == ChannelStatus::Deleting {
            return None;
        }
        Some(view.channel.ttl.seconds())
    }
}

impl Application {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        service: ServiceConfig,
        hub: HubConfig,
        node: NodeId,
        ports: SignalingPorts,
    ) -> Self {
        let streams = Arc::new(StreamService::new(
            Arc::new(MemoryStreamStore::new()),
            Arc::clone(&clock),
            StreamConfig {
                lifecycle_delay: service.lifecycle_delay,
                ..StreamConfig::default()
            },
        ));
        let channels = Arc::new(ChannelService::new(store, Arc::clone(&clock), service));
        let hub_ports = HubPorts {
            presence: ports.presence,
            held: ports.held,
            bus: ports.bus,
            ttl: Arc::new(ServiceTtl(Arc::clone(&channels))),
        };
        let hub = Hub::new(node, clock, hub, hub_ports);
        hub.watch().use_feed(ports.feed);
        Self {
            channels,
            streams,
            hub,
            throttle: crate::quota::Throttle::off(),
        }
    }

    /// Keeps streams in `store` (the backend of `--store`) instead of in memory.
    pub fn with_streams(mut self, store: Arc<dyn StreamStore>, config: StreamConfig) -> Self {
        self.streams = Arc::new(StreamService::new(
            store,
            Arc::clone(self.channels.clock()),
            config,
        ));
        self
    }

    /// The stream rules and the channels' media-storage configuration.
    pub fn streams(&self) -> &StreamService {
        &self.streams
    }

    /// The API quotas to enforce (docs/protocol.md §8.1-8.2); none unless set.
    pub fn with_throttle(mut self, throttle: crate::quota::Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Calls refused by a quota since start.
    pub fn throttled(&self) -> u64 {
        self.throttle.throttled()
    }

    /// Counts a call against its quotas: `ClientLimitExceededException` beyond them.
    pub async fn throttle(
        &self,
        ns: &Namespace,
        op: crate::quota::QuotaOp,
        channel: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.throttle.check(ns, op, channel).await
    }

    /// The channel rules (create, describe, list, update, tags). Deletion goes through
    /// [`Application::delete_channel`], which also tells the channel's connections.
    pub fn channels(&self) -> &ChannelService {
        &self.channels
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.channels.clock()
    }

    /// The channel if it can be used for `purpose`, else the error AWS gives for that case.
    pub async fn usable_channel(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        purpose: Purpose,
    ) -> Result<ChannelView, ServiceError> {
        let view = self.channels.get_by_arn(ns, arn).await?;
        if view.status == ChannelStatus::Active {
            return Ok(view);
        }
        Err(match purpose {
            Purpose::Endpoint => ServiceError::in_use(format!(
                "The signaling channel {} is not in the ACTIVE state (it is {}).",
                view.channel.name,
                view.status.as_str()
            )),
            Purpose::Connect => ServiceError::in_use(format!(
                "The signaling channel is {}, not ACTIVE.",
                view.status.as_str()
            )),
            Purpose::DataPlane => ServiceError::channel_not_found(),
        })
    }

    /// Deletes (or starts deleting) a channel and sends GO_AWAY to its connections on every
    /// node; they stay open for the grace period, then their sessions close them.
    pub async fn delete_channel(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        current: Option<&Version>,
    ) -> Result<Channel, ServiceError> {
        let deleted = self.channels.delete(ns, arn, current).await?;
        // The stream it stored into is free for another channel (issue 15).
        if let Err(e) = self.streams.channel_deleted(ns, &deleted.arn).await {
            tracing::error!(error = %e, channel = %deleted.arn, "media-storage link not removed");
        }
        if let Err(e) = self.hub.channel_deleted(deleted.arn.as_str()).await {
            tracing::error!(error = %e, channel = %deleted.arn, "GO_AWAY on delete incomplete");
            return Err(ServiceError::Unavailable(format!(
                "The signaling channel was deleted, but its connections could not all be told \
                 ({e}); they close at their idle timeout."
            )));
        }
        Ok(deleted)
    }

    /// Opens a signaling connection as `role` on an ACTIVE channel. It stays pending (held
    /// messages wait) until [`Registration::activate`]; dropping the registration at any point
    /// takes it out again.
    pub async fn connect(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        role: Role,
        sink: Arc<dyn Sink>,
    ) -> Result<Registration, ServiceError> {
        self.usable_channel(ns, arn, Purpose::Connect).await?;
        self.hub
            .connect(arn.as_str(), role, sink)
            .await
            .map_err(signal_to_service)
    }

    /// Relays one message from a connection.
    pub async fn relay(&self, from: &ConnectionId, msg: ClientMessage) -> Result<(), SignalError> {
        self.hub.relay(from, msg).await
    }

    /// SendAlexaOfferToMaster: the offer goes to the master as an SDP_OFFER from `sender`
    /// (held for the TTL when no master is connected), and the call waits up to `timeout` for
    /// the master's SDP_ANSWER to `sender`. It waits in a place of its own: it is not a viewer
    /// and never evicts the viewer with the same ClientId.
    pub async fn send_alexa_offer(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        sender: String,
        payload: String,
        timeout: Duration,
    ) -> Result<String, ServiceError> {
        self.usable_channel(ns, arn, Purpose::DataPlane).await?;
        let (tx, mut rx) = mpsc::channel(16);
        // If the caller goes away at any await below, dropping `waiter` takes it out.
        let waiter = self
            .hub
            .connect(
                arn.as_str(),
                Role::AnswerWaiter(sender.clone()),
                Arc::new(ChannelSink(tx)),
            )
            .await
            .map_err(signal_to_service)?;
        waiter.activate().await;
        let offer = Relayed {
            action: Action::SdpOffer,
            sender: Some(sender),
            payload,
        };
        let routed = self
            .hub
            .route(arn.as_str(), Role::Master, offer, None)
            .await;
        let answer = async {
            routed.map_err(signal_to_service)?;
            while let Some(event) = rx.recv().await {
                match event {
                    Event::Message(m) if m.action == Action::SdpAnswer => return Ok(m.payload),
                    Event::Close { .. } | Event::GoAway { .. } => break,
                    _ => {}
                }
            }
            Err(ServiceError::channel_not_found())
        };
        let result = tokio::time::timeout(timeout, answer).await;
        waiter.release().await;
        match result {
            Ok(r) => r,
            Err(_) => Err(ServiceError::not_found(format!(
                "No master answered within {timeout:?}; the offer stays queued for the \
                 channel's MessageTtlSeconds."
            ))),
        }
    }
}

/// A relay refusal met outside a WebSocket (handshake, HTTPS call).
fn signal_to_service(e: SignalError) -> ServiceError {
    match e.error_type {
        ErrorCode::InternalFailure => ServiceError::Internal(e.description.into()),
        code => ServiceError::new(code, e.description),
    }
}
