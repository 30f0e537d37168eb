//! Wire types of the kinesisvideo stream operations and the channels' media-storage
//! configuration (docs/protocol.md §2.1, §3.1), with the AWS member names spelled out. As in
//! `dto.rs`, every input member is optional here; the decoders check required-ness and
//! constraints and name the member that failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `StreamNameCondition` / `ChannelNameCondition` have the same members.
pub use super::dto::ChannelNameCondition as StreamNameCondition;

#[derive(Debug, Deserialize)]
pub struct StreamStorageConfiguration {
    #[serde(rename = "DefaultStorageTier")]
    pub default_storage_tier: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateStreamInput {
    #[serde(rename = "DeviceName")]
    pub device_name: Option<String>,
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "MediaType")]
    pub media_type: Option<String>,
    #[serde(rename = "KmsKeyId")]
    pub kms_key_id: Option<String>,
    #[serde(rename = "DataRetentionInHours")]
    pub data_retention_in_hours: Option<i64>,
    #[serde(rename = "Tags")]
    pub tags: Option<BTreeMap<String, Option<String>>>,
    #[serde(rename = "StreamStorageConfiguration")]
    pub stream_storage_configuration: Option<StreamStorageConfiguration>,
}

#[derive(Debug, Serialize)]
pub struct CreateStreamOutput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}

/// The input of every operation that names a stream by `StreamName` or `StreamARN` and has
/// no other member than these (DescribeStream, ListTagsForStream's, GetDataEndpoint's, ...).
#[derive(Debug, Deserialize)]
pub struct StreamNamed {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StreamInfo {
    #[serde(rename = "DeviceName", skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(rename = "StreamName")]
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(rename = "MediaType", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(rename = "KmsKeyId")]
    pub kms_key_id: String,
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "Status")]
    pub status: &'static str,
    /// Epoch seconds as a JSON number (docs/protocol.md §1).
    #[serde(rename = "CreationTime")]
    pub creation_time: f64,
    #[serde(rename = "DataRetentionInHours")]
    pub data_retention_in_hours: u32,
}

#[derive(Debug, Serialize)]
pub struct DescribeStreamOutput {
    #[serde(rename = "StreamInfo")]
    pub stream_info: StreamInfo,
}

#[derive(Debug, Deserialize)]
pub struct ListStreamsInput {
    #[serde(rename = "MaxResults")]
    pub max_results: Option<i64>,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "StreamNameCondition")]
    pub stream_name_condition: Option<StreamNameCondition>,
}

#[derive(Debug, Serialize)]
pub struct ListStreamsOutput {
    #[serde(rename = "StreamInfoList")]
    pub stream_info_list: Vec<StreamInfo>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Option<String>,
    #[serde(rename = "DeviceName")]
    pub device_name: Option<String>,
    #[serde(rename = "MediaType")]
    pub media_type: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateDataRetentionInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Option<String>,
    #[serde(rename = "Operation")]
    pub operation: Option<String>,
    #[serde(rename = "DataRetentionChangeInHours")]
    pub data_retention_change_in_hours: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct TagStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "Tags")]
    pub tags: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct UntagStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "TagKeyList")]
    pub tag_key_list: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ListTagsForStreamInput {
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListTagsForStreamOutput {
    #[serde(rename = "Tags")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct GetDataEndpointInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "APIName")]
    pub api_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GetDataEndpointOutput {
    #[serde(rename = "DataEndpoint")]
    pub data_endpoint: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct MediaStorageConfiguration {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(rename = "Status")]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateMediaStorageConfigurationInput {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "MediaStorageConfiguration")]
    pub media_storage_configuration: Option<MediaStorageConfiguration>,
}

#[derive(Debug, Serialize)]
pub struct DescribeMediaStorageConfigurationOutput {
    #[serde(rename = "MediaStorageConfiguration")]
    pub media_storage_configuration: MediaStorageConfiguration,
}

#[derive(Debug, Deserialize)]
pub struct DescribeMappedResourceConfigurationInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "MaxResults")]
    pub max_results: Option<i64>,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MappedResourceConfigurationListItem {
    #[serde(rename = "Type")]
    pub resource_type: &'static str,
    #[serde(rename = "ARN")]
    pub arn: String,
}

#[derive(Debug, Serialize)]
pub struct DescribeMappedResourceConfigurationOutput {
    #[serde(rename = "MappedResourceConfigurationList")]
    pub mapped_resource_configuration_list: Vec<MappedResourceConfigurationListItem>,
}
