//! What every request handler shares.

use std::sync::Arc;

use kvs_core::service::ChannelService;

use crate::aws::auth::Authenticator;
use crate::endpoints::EndpointBase;

pub struct AppState {
    pub service: Arc<ChannelService>,
    pub auth: Authenticator,
    /// `--public-endpoint`, when set.
    pub public_endpoint: Option<EndpointBase>,
    /// The address we listen on, for endpoint URLs when a request has no usable Host header.
    pub local_authority: String,
}

pub type SharedState = Arc<AppState>;
