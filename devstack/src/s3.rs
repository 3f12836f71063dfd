//! The few S3 calls devstack needs against the emulator (create a bucket, put, list and get
//! objects), as plain path-style HTTP. The emulator does not check signatures, so requests
//! carry a fixed `Authorization` header naming the service (moto routes and authorizes by
//! it); this avoids the S3 SDK's build time.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::template::REGION;

/// The fixed authorization header (access key "test", like the SDK configuration).
fn authorization() -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// An S3 client for one emulator endpoint.
#[derive(Debug, Clone)]
pub struct S3 {
    http: reqwest::Client,
    endpoint: String,
}

impl S3 {
    /// A client for the emulator at `endpoint` (e.g. `http://127.0.0.1:40123`).
    pub fn new(endpoint: &str) -> S3 {
        S3 {
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>> {
        let response = request
            .header("authorization", authorization())
            .send()
            .await
            .with_context(|| what.to_string())?;
        let status = response.status();
        let body = response.bytes().await.with_context(|| what.to_string())?;
        if !status.is_success() {
            bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    }

    /// CreateBucket (an existing bucket of ours is fine).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let url = format!("{}/{bucket}", self.endpoint);
        match self
            .send(self.http.put(url), &format!("CreateBucket {bucket}"))
            .await
        {
            Err(err) if format!("{err:#}").contains("BucketAlreadyOwnedByYou") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// PutObject.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        self.send(
            self.http
                .put(url)
                .header("content-type", "application/octet-stream")
                .body(body),
            &format!("PutObject {bucket}/{key}"),
        )
        .await
        .map(|_| ())
    }

    /// GetObject.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        self.send(self.http.get(url), &format!("GetObject {bucket}/{key}"))
            .await
    }

    /// Every key under `prefix` (ListObjectsV2, all pages).
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("list-type", "2".to_string()),
                ("prefix", prefix.to_string()),
            ];
            if let Some(token) = &token {
                query.push(("continuation-token", token.clone()));
            }
            let url =
                reqwest::Url::parse_with_params(&format!("{}/{bucket}", self.endpoint), &query)
                    .context("listing URL")?;
            let body = self
                .send(
                    self.http.get(url),
                    &format!("ListObjectsV2 {bucket}/{prefix}"),
                )
                .await?;
            let xml = String::from_utf8_lossy(&body);
            keys.extend(elements(&xml, "Key"));
            token = elements(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Downloads every object under `prefix` into `dir`, keeping the key's folders; returns
    /// the files written.
    pub async fn download(&self, bucket: &str, prefix: &str, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for key in self.list_keys(bucket, prefix).await? {
            if key.split('/').any(|part| part == ".." || part.is_empty()) {
                bail!("refusing to download key {key:?}");
            }
            let path = dir.join(&key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let body = self.get_object(bucket, &key).await?;
            std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
            files.push(path);
        }
        Ok(files)
    }
}

/// The texts of every `<name>...</name>` element of an S3 XML answer (entities decoded).
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        found.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::elements;

    #[test]
    fn keys_and_tokens_are_read_from_the_listing() {
        let xml = "<ListBucketResult><Contents><Key>a/dt=1/x.gz</Key></Contents>\
                   <Contents><Key>b&amp;c</Key></Contents>\
                   <NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        assert_eq!(elements(xml, "Key"), vec!["a/dt=1/x.gz", "b&c"]);
        assert_eq!(elements(xml, "NextContinuationToken"), vec!["t1"]);
        assert!(elements(xml, "Missing").is_empty());
    }
}
