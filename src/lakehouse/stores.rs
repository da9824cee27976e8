//! Object stores for external tables, built from a location URL and string
//! storage options (parsed once; an unknown key is an error naming it):
//!
//! - `s3://bucket/prefix`: AWS S3 or any S3-compatible endpoint (`endpoint`,
//!   `allow_http` for local servers), credentials from options or the AWS_*
//!   environment variables;
//! - `oci://bucket@namespace/prefix`: OCI Object Storage through its
//!   S3-compatible endpoint (`region` from options, OCI_REGION or AWS_REGION);
//! - `gs://bucket/prefix`, `az://container/prefix`, `abfss://...`;
//! - `http(s)://host/prefix` (read-only).
//!
//! Credentials are never part of an error message: errors name the location
//! (without user info) and the option key, never its value.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use url::Url;

/// Why a location cannot be used: what is wrong, and the store's own error
/// when it has one.
#[derive(Debug)]
pub struct LocationProblem {
    pub reason: String,
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl LocationProblem {
    pub fn because(reason: impl Into<String>) -> Self {
        LocationProblem {
            reason: reason.into(),
            source: None,
        }
    }

    pub fn caused(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        LocationProblem {
            reason: reason.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<String> for LocationProblem {
    fn from(reason: String) -> Self {
        LocationProblem::because(reason)
    }
}

/// A store, and the URL of the store's root (what DataFusion registers it
/// under) and of the location within it (OCI locations are rewritten to the
/// S3 bucket).
pub struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    pub root: Url,
    pub location: Url,
}

/// Accepted spellings of the common options, mapped to the store's own keys.
fn alias(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    match lower.as_str() {
        "endpoint" | "endpoint_url" => "aws_endpoint".into(),
        "region" => "aws_region".into(),
        "access_key_id" => "aws_access_key_id".into(),
        "secret_access_key" => "aws_secret_access_key".into(),
        "session_token" => "aws_session_token".into(),
        "allow_http" => "aws_allow_http".into(),
        _ => lower,
    }
}

/// Remove user info (credentials) from a URL before it appears in a message.
pub fn redact(location: &str) -> String {
    match Url::parse(location) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => location.to_string(),
    }
}

pub fn open_store(
    location: &Url,
    options: &BTreeMap<String, String>,
) -> Result<OpenedStore, LocationProblem> {
    // An empty value stands for "not given" (a secret left out of the
    // persisted definition comes from the environment instead).
    let options: BTreeMap<String, String> = options
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let options = &options;
    let unknown = |key: &str, scheme: &str| {
        format!("unknown storage option '{key}' for {scheme}:// locations")
    };
    match location.scheme() {
        "s3" | "s3a" | "oci" => {
            let mut builder = AmazonS3Builder::from_env();
            let mut location = location.clone();
            if location.scheme() == "oci" {
                // oci://bucket@namespace/prefix -> s3://bucket/prefix at the
                // namespace's S3-compatible endpoint.
                let bucket = location.username().to_string();
                let namespace = location.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() || namespace.is_empty() {
                    return Err(LocationProblem::because(
                        "an OCI location is oci://bucket@namespace/prefix",
                    ));
                }
                let region = options
                    .get("region")
                    .or_else(|| options.get("oci_region"))
                    .cloned()
                    .or_else(|| std::env::var("OCI_REGION").ok())
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .ok_or_else(|| {
                        LocationProblem::because(
                            "an oci:// location needs a region (option 'region' or OCI_REGION)",
                        )
                    })?;
                builder = builder
                    .with_endpoint(format!(
                        "https://{namespace}.compat.objectstorage.{region}.oraclecloud.com"
                    ))
                    .with_region(region)
                    .with_virtual_hosted_style_request(false);
                location = Url::parse(&format!("s3://{bucket}{}", location.path()))
                    .map_err(|e| LocationProblem::caused("not a valid bucket name", e))?;
            }
            builder = builder.with_url(location.as_str());
            for (key, value) in options {
                if matches!(key.as_str(), "oci_region")
                    || (key == "region" && location.scheme() == "oci")
                {
                    continue;
                }
                let config = AmazonS3ConfigKey::from_str(&alias(key))
                    .map_err(|_| LocationProblem::because(unknown(key, "s3")))?;
                builder = builder.with_config(config, value.clone());
            }
            let store = builder
                .build()
                .map_err(|e| LocationProblem::caused("the object store cannot be set up", e))?;
            let root = bucket_root("s3", &location)?;
            Ok(OpenedStore {
                store: Arc::new(store),
                root,
                location,
            })
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(location.as_str());
            for (key, value) in options {
                let config = GoogleConfigKey::from_str(&key.to_ascii_lowercase())
                    .map_err(|_| LocationProblem::because(unknown(key, "gs")))?;
                builder = builder.with_config(config, value.clone());
            }
            let store = builder
                .build()
                .map_err(|e| LocationProblem::caused("the object store cannot be set up", e))?;
            let root = bucket_root("gs", location)?;
            Ok(OpenedStore {
                store: Arc::new(store),
                root,
                location: location.clone(),
            })
        }
        "az" | "abfs" | "abfss" | "azure" => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(location.as_str());
            for (key, value) in options {
                let config = AzureConfigKey::from_str(&key.to_ascii_lowercase())
                    .map_err(|_| LocationProblem::because(unknown(key, "az")))?;
                builder = builder.with_config(config, value.clone());
            }
            let store = builder
                .build()
                .map_err(|e| LocationProblem::caused("the object store cannot be set up", e))?;
            let mut root = location.clone();
            root.set_path("/");
            Ok(OpenedStore {
                store: Arc::new(store),
                root,
                location: location.clone(),
            })
        }
        "http" | "https" => {
            if let Some(key) = options.keys().next() {
                return Err(unknown(key, location.scheme()).into());
            }
            let mut root = location.clone();
            root.set_path("/");
            let store = HttpBuilder::new()
                .with_url(root.as_str())
                .build()
                .map_err(|e| LocationProblem::caused("the HTTP store cannot be set up", e))?;
            Ok(OpenedStore {
                store: Arc::new(store),
                root,
                location: location.clone(),
            })
        }
        other => Err(LocationProblem::because(format!(
            "the '{other}://' scheme is not supported"
        ))),
    }
}

/// `scheme://bucket/`: the URL an object store is registered under.
fn bucket_root(scheme: &str, location: &Url) -> Result<Url, LocationProblem> {
    Url::parse(&format!(
        "{scheme}://{}/",
        location.host_str().unwrap_or_default()
    ))
    .map_err(|e| LocationProblem::caused("not a valid bucket name", e))
}
