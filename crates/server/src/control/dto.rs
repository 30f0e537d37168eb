//! Wire types of the kinesisvideo control plane: plain serde structs with the AWS member names
//! spelled out (docs/protocol.md §2.1, §3.1). Every input member is optional here; required-ness and
//! constraints are checked by the handlers, so a missing member gets InvalidArgumentException
//! naming it rather than a generic parse error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct SingleMasterConfiguration {
    #[serde(rename = "MessageTtlSeconds", skip_serializing_if = "Option::is_none")]
    pub message_ttl_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: Option<String>,
    #[serde(rename = "Value")]
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateSignalingChannelInput {
    #[serde(rename = "ChannelName")]
    pub channel_name: Option<String>,
    #[serde(rename = "ChannelType")]
    pub channel_type: Option<String>,
    #[serde(rename = "SingleMasterConfiguration")]
    pub single_master_configuration: Option<SingleMasterConfiguration>,
    #[serde(rename = "Tags")]
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Serialize)]
pub struct CreateSignalingChannelOutput {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: String,
}

#[derive(Debug, Deserialize)]
pub struct DescribeSignalingChannelInput {
    #[serde(rename = "ChannelName")]
    pub channel_name: Option<String>,
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChannelInfo {
    #[serde(rename = "ChannelName")]
    pub channel_name: String,
    #[serde(rename = "ChannelARN")]
    pub channel_arn: String,
    #[serde(rename = "ChannelType")]
    pub channel_type: &'static str,
    #[serde(rename = "ChannelStatus")]
    pub channel_status: &'static str,
    /// Epoch seconds as a JSON number (docs/protocol.md §1).
    #[serde(rename = "CreationTime")]
    pub creation_time: f64,
    #[serde(rename = "SingleMasterConfiguration")]
    pub single_master_configuration: SingleMasterConfiguration,
    #[serde(rename = "Version")]
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct DescribeSignalingChannelOutput {
    #[serde(rename = "ChannelInfo")]
    pub channel_info: ChannelInfo,
}

#[derive(Debug, Deserialize)]
pub struct ChannelNameCondition {
    #[serde(rename = "ComparisonOperator")]
    pub comparison_operator: Option<String>,
    #[serde(rename = "ComparisonValue")]
    pub comparison_value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListSignalingChannelsInput {
    #[serde(rename = "MaxResults")]
    pub max_results: Option<i64>,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "ChannelNameCondition")]
    pub channel_name_condition: Option<ChannelNameCondition>,
}

#[derive(Debug, Serialize)]
pub struct ListSignalingChannelsOutput {
    #[serde(rename = "ChannelInfoList")]
    pub channel_info_list: Vec<ChannelInfo>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateSignalingChannelInput {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Option<String>,
    #[serde(rename = "SingleMasterConfiguration")]
    pub single_master_configuration: Option<SingleMasterConfiguration>,
}

#[derive(Debug, Deserialize)]
pub struct DeleteSignalingChannelInput {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SingleMasterChannelEndpointConfiguration {
    #[serde(rename = "Protocols")]
    pub protocols: Option<Vec<String>>,
    #[serde(rename = "Role")]
    pub role: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GetSignalingChannelEndpointInput {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "SingleMasterChannelEndpointConfiguration")]
    pub single_master_channel_endpoint_configuration:
        Option<SingleMasterChannelEndpointConfiguration>,
}

#[derive(Debug, Serialize)]
pub struct ResourceEndpointListItem {
    #[serde(rename = "Protocol")]
    pub protocol: &'static str,
    #[serde(rename = "ResourceEndpoint")]
    pub resource_endpoint: String,
}

#[derive(Debug, Serialize)]
pub struct GetSignalingChannelEndpointOutput {
    #[serde(rename = "ResourceEndpointList")]
    pub resource_endpoint_list: Vec<ResourceEndpointListItem>,
}

#[derive(Debug, Deserialize)]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    #[serde(rename = "Tags")]
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Deserialize)]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    #[serde(rename = "TagKeyList")]
    pub tag_key_list: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ListTagsForResourceInput {
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListTagsForResourceOutput {
    #[serde(rename = "Tags")]
    pub tags: BTreeMap<String, String>,
}
