//! Images in registries: names as Docker users type them, pulling one into the store and
//! pushing one from it.
//!
//! Decision: the registry protocol is `oci-client` (the OCI Distribution client of the ORAS
//! project, on reqwest with the system's OpenSSL and CA certificates): it speaks the token
//! handshake Docker Hub and most registries need, basic auth, redirects to blob storage, and
//! verifies each blob's digest as it streams. What Berth adds is the store's side: the
//! linux/amd64 manifest of an index, Docker v2 and OCI media types, layers the store already
//! has left alone, each blob received into an ingest file and renamed into place only once its
//! digest matches, the name given to the image only after everything it needs is there. A
//! transfer that breaks off is taken up where it stopped with a ranged request, in the same
//! pull (a few times) and in the next one (an interrupted pull leaves whole blobs and the
//! received part of the others, and nothing named).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use berth_api::registry_login::{DOCKER_HUB, RegistryLogin};
use futures_util::TryStreamExt;
use oci_client::Client;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};

use super::layer::hex;
use super::oci::{Descriptor, Manifest};
use super::reference::Reference;
use super::store::{Image, ImageError, ImageStore, Ingest};

/// Manifests Berth reads: OCI and Docker v2, single images and indexes.
const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: &[&str] = &[
    MEDIA_OCI_MANIFEST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_DOCKER_LIST,
];

/// An image in a registry, as `[REGISTRY/]REPOSITORY[:TAG|@DIGEST]` names it, normalised as
/// Docker normalises it (`busybox` is `docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
}

impl RemoteImage {
    pub fn parse(text: &str) -> Result<RemoteImage, String> {
        let bad = |why: &str| format!("`{text}` is not an image reference: {why}");
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("the digest must be sha256:<64 hex digits>"));
                }
                (rest, Some(digest.to_ascii_lowercase()))
            }
            None => (text, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                let registry = if first == "index.docker.io" {
                    DOCKER_HUB
                } else {
                    first
                };
                (registry.to_owned(), path)
            }
            _ => (DOCKER_HUB.to_owned(), rest),
        };
        let (path, tag) = match path.rsplit_once(':') {
            Some((path, tag)) => (path, tag.to_owned()),
            None => (path, "latest".to_owned()),
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        // The registry, repository and tag obey the store's rules for names (a host of
        // dot-separated labels, maybe a port).
        Reference::parse(&format!("{registry}/{repository}:{tag}")).map_err(|e| bad(&e))?;
        Ok(RemoteImage {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The name the image gets in the store: Docker's familiar form (`busybox:latest`,
    /// `user/app:1`) for Docker Hub, the whole name for other registries.
    pub fn local_name(&self) -> Reference {
        let name = match self.repository.strip_prefix("library/") {
            Some(short) if self.registry == DOCKER_HUB => short.to_owned(),
            _ if self.registry == DOCKER_HUB => self.repository.clone(),
            _ => format!("{}/{}", self.registry, self.repository),
        };
        Reference {
            name,
            tag: self.tag.clone(),
        }
    }

    fn is_local(&self) -> bool {
        is_local(&self.registry)
    }

    /// The login among `logins` for this image.
    fn login<'a>(&self, logins: &'a [RegistryLogin]) -> Option<&'a RegistryLogin> {
        RegistryLogin::for_image(logins, &self.registry, &self.repository)
    }

    fn reference(&self, digest: Option<&str>) -> oci_client::Reference {
        match digest.or(self.digest.as_deref()) {
            Some(d) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.to_owned(),
            ),
            None => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                self.tag.clone(),
            ),
        }
    }
}

impl fmt::Display for RemoteImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match &self.digest {
            Some(d) => write!(f, "@{d}"),
            None => write!(f, ":{}", self.tag),
        }
    }
}

/// What a pull or a push is doing with one blob, for progress reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobEvent {
    /// `done` of its `size` bytes have arrived (a pull) or gone (a push).
    Bytes {
        digest: String,
        done: u64,
        size: u64,
    },
    /// It is at its destination, the store or the registry (`present`: it was there already).
    Done { digest: String, present: bool },
}

/// A registry on this machine is spoken to over plain HTTP, as Docker allows for `localhost`
/// and 127.0.0.0/8; any other over HTTPS.
fn is_local(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host.starts_with("127.")
}

/// Why a pull, push or login failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{registry} refused the login of `{username}`: {message}")]
    LoginRefused {
        registry: String,
        username: String,
        message: String,
    },
    #[error("{0}")]
    BadReference(String),
    #[error("{image}: {message}")]
    Registry { image: String, message: String },
    #[error("{image}: {message}")]
    Unsupported { image: String, message: String },
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// How many bytes of a blob arrive between two progress reports.
const REPORT_EVERY: u64 = 1 << 20;

/// How many times one pull takes up a blob's transfer again after the connection broke
/// (Docker's download manager tries five times), each time from the byte it stopped at.
const TRANSFER_ATTEMPTS: u32 = 5;

/// A blob being received into the store's ingest file ([`ImageStore::open_ingest`]). A
/// transfer from the first byte is checked by `oci-client`'s stream as it goes (it ends in an
/// error if the digest differs); one taken up from an offset is checked by reading the whole
/// file back ([`BlobWriter::verify`]). The file stays when the transfer breaks off, for the
/// next attempt or the next pull, and goes when its content is wrong.
struct BlobWriter {
    file: File,
    path: PathBuf,
    digest: String,
    size: u64,
    written: u64,
    /// Whether any of the content came from a ranged request, which nobody has checked yet.
    resumed: bool,
    events: tokio::sync::mpsc::UnboundedSender<BlobEvent>,
}

impl BlobWriter {
    fn new(
        ingest: Ingest,
        blob: &Descriptor,
        events: tokio::sync::mpsc::UnboundedSender<BlobEvent>,
    ) -> BlobWriter {
        let Ingest { file, path, len } = ingest;
        BlobWriter {
            file,
            path,
            digest: blob.digest.clone(),
            size: blob.size,
            written: len,
            resumed: false,
            events,
        }
    }

    /// Appends bytes as they arrive (a write into the page cache: short enough for a runtime
    /// thread) and reports them. A registry that sends more than the manifest says is cut off.
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let total = self.written + bytes.len() as u64;
        if total > self.size {
            return Err(format!(
                "the registry sent more than the {} bytes its manifest gives it",
                self.size
            ));
        }
        self.file
            .write_all(bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        let before = self.written;
        self.written = total;
        // A report a mebibyte, not one a network read (thousands a layer).
        if before / REPORT_EVERY != self.written / REPORT_EVERY || self.written == self.size {
            self.report();
        }
        Ok(())
    }

    fn report(&self) {
        let _ = self.events.send(BlobEvent::Bytes {
            digest: self.digest.clone(),
            done: self.written,
            size: self.size,
        });
    }

    /// Empties the file: the registry sends the whole blob again.
    fn restart(&mut self) -> Result<(), String> {
        self.file
            .set_len(0)
            .map_err(|e| format!("cannot empty {}: {e}", self.path.display()))?;
        self.written = 0;
        self.resumed = false;
        Ok(())
    }

    /// Reads the whole file back and compares its digest with the one asked for: the check a
    /// transfer taken up from an offset did not get as it streamed.
    fn verify(&mut self) -> Result<(), String> {
        use std::io::{Seek, SeekFrom};
        let read = |e: std::io::Error| format!("cannot read {}: {e}", self.path.display());
        self.file.seek(SeekFrom::Start(0)).map_err(read)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut self.file, &mut hasher).map_err(read)?;
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if actual == self.digest {
            self.resumed = false;
            Ok(())
        } else {
            Err(format!(
                "its content has digest {actual}, not {}",
                self.digest
            ))
        }
    }

    /// The complete file, for syncing and renaming. The progress channel closes with the
    /// writer: the pull reads reports until every writer is gone.
    fn finish(self) -> (File, PathBuf) {
        (self.file, self.path)
    }

    /// Removes the file: what it holds is wrong, and the next pull starts from nothing.
    fn discard(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.written = 0;
        self.resumed = false;
    }
}

/// Whether an error of a blob's stream is the connection's (worth asking again for the rest)
/// rather than the content's (a wrong digest) or the registry's answer.
fn is_transport(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<reqwest::Error>().is_some())
}

/// Receives blob `blob` of `reference` into `writer`'s file, taking the transfer up where it
/// stopped (an earlier pull's, or this one's after the connection broke) with a ranged request
/// when the registry allows it, and from the start when it does not. The file holds exactly
/// the blob when this succeeds.
async fn receive_blob(
    client: &Client,
    reference: &oci_client::Reference,
    writer: &mut BlobWriter,
) -> Result<(), String> {
    let outcome = transfer_blob(client, reference, writer).await;
    match outcome {
        Ok(()) => Ok(()),
        Err(Failure::Content(message)) => {
            writer.discard();
            Err(message)
        }
        Err(Failure::Transfer(message)) => Err(message),
    }
}

/// Why a blob did not arrive: its content is wrong (what arrived is thrown away), or the
/// transfer failed (what arrived is kept for the next pull).
enum Failure {
    Content(String),
    Transfer(String),
}

async fn transfer_blob(
    client: &Client,
    reference: &oci_client::Reference,
    writer: &mut BlobWriter,
) -> Result<(), Failure> {
    let digest = writer.digest.clone();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let again = attempt < TRANSFER_ATTEMPTS;
        let offset = writer.written;
        let stream = if offset == 0 {
            client.pull_blob_stream(reference, digest.as_str()).await
        } else if offset >= writer.size {
            // Whole already (a pull that stopped between receiving and storing it).
            writer.resumed = true;
            break;
        } else {
            writer.report();
            match client
                .pull_blob_stream_partial(reference, digest.as_str(), offset, None)
                .await
            {
                Ok(BlobResponse::Partial(stream)) => {
                    writer.resumed = true;
                    Ok(stream)
                }
                Ok(BlobResponse::Full(stream)) => {
                    // The registry ignored the range: the whole blob comes.
                    writer.restart().map_err(Failure::Transfer)?;
                    Ok(stream)
                }
                Err(e) => Err(e),
            }
        };
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(OciDistributionError::RequestError(_)) if again => continue,
            Err(e) => return Err(Failure::Transfer(e.to_string())),
        };
        let ended = loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => writer.write(&chunk).map_err(Failure::Content)?,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        match ended {
            Ok(()) if writer.written == writer.size => break,
            // A body cut short without the transport noticing (no length given).
            Ok(()) if again => continue,
            Ok(()) => {
                return Err(Failure::Transfer(format!(
                    "the registry sent {} of its {} bytes",
                    writer.written, writer.size
                )));
            }
            // The connection broke: the next round asks for the rest.
            Err(e) if is_transport(&e) && again => {}
            Err(e) if is_transport(&e) => return Err(Failure::Transfer(e.to_string())),
            Err(e) => return Err(Failure::Content(e.to_string())),
        }
    }
    if writer.resumed {
        writer.verify().map_err(Failure::Content)?;
    }
    Ok(())
}

/// A manifest's JSON when it is an index: the entries with their platforms.
#[derive(serde::Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(serde::Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// The platform a pull asks for (`--platform os/arch[/variant]`); the host's, linux/amd64, by
/// default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for WantedPlatform {
    fn default() -> Self {
        WantedPlatform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl WantedPlatform {
    pub fn parse(text: &str) -> Result<WantedPlatform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric());
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(WantedPlatform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(WantedPlatform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(format!(
                "--platform {text}: the form is OS/ARCH[/VARIANT], e.g. linux/arm64"
            )),
        }
    }

    fn matches(&self, platform: &Platform) -> bool {
        platform.os == self.os
            && platform.architecture == self.architecture
            && (self.variant.is_none() || platform.variant == self.variant)
    }
}

impl fmt::Display for WantedPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct MediaTypeOnly {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// A client for `image`'s registry (plain HTTP for one on this machine) as `login`'s user (or
/// anonymous), and the auth to use.
fn client_for(image: &RemoteImage, login: Option<&RegistryLogin>) -> (Client, RegistryAuth) {
    let protocol = if image.is_local() {
        ClientProtocol::HttpsExcept(vec![image.registry.clone()])
    } else {
        ClientProtocol::Https
    };
    // One client a registry and user for the process's life: making one loads the system's
    // CA certificates (four parses of the bundle, ~240 ms here, more than a 128 MB pull over
    // loopback takes), and a kept one keeps its tokens. A client keeps the first auth it is
    // given for a registry, so each user of a system daemon has clients of their own.
    type Key = (String, Option<(String, String)>);
    static CLIENTS: OnceLock<Mutex<HashMap<Key, Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let client = clients
        .entry((
            image.registry.clone(),
            login.map(|l| (l.username.clone(), l.password.clone())),
        ))
        .or_insert_with(|| {
            Client::new(ClientConfig {
                protocol,
                ..ClientConfig::default()
            })
        })
        .clone();
    drop(clients);
    let auth = match login {
        Some(l) => RegistryAuth::Basic(l.username.clone(), l.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    (client, auth)
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Pulls `image` into `store` as the user of `logins` and names it there
/// ([`RemoteImage::local_name`]). Call from a thread that may block: blobs are written to
/// local files as they arrive.
pub async fn pull(
    store: &ImageStore,
    image: &RemoteImage,
    platform: &WantedPlatform,
    logins: &[RegistryLogin],
    progress: &(dyn Fn(BlobEvent) + Send + Sync),
) -> Result<Image, RemoteError> {
    let failed = |message: String| RemoteError::Registry {
        image: image.to_string(),
        message,
    };
    let unsupported = |message: String| RemoteError::Unsupported {
        image: image.to_string(),
        message,
    };
    let (client, auth) = client_for(image, image.login(logins));
    let reference = image.reference(None);
    // The digest a registry names in its header is a hint; the content's own digest counts.
    let (bytes, _) = client
        .pull_manifest_raw(&reference, &auth, ACCEPTED)
        .await
        .map_err(|e| failed(format!("cannot get its manifest: {e}")))?;
    let mut bytes = bytes.to_vec();
    let mut digest = sha256_of(&bytes);
    if let Some(wanted) = &image.digest
        && *wanted != digest
    {
        return Err(failed(format!(
            "the registry sent a manifest with digest {digest} for {wanted}"
        )));
    }
    let head: MediaTypeOnly = serde_json::from_slice(&bytes)
        .map_err(|e| failed(format!("its manifest is not JSON: {e}")))?;
    if head.schema_version == Some(1) {
        return Err(unsupported(
            "Docker schema 1 manifests are not supported (push the image again with a current client)"
                .into(),
        ));
    }
    let is_index = matches!(
        head.media_type.as_deref(),
        Some(MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST)
    ) || (head.media_type.is_none() && head.manifests.is_some());
    if is_index {
        let index: IndexJson = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("its index is not what an index holds: {e}")))?;
        let entry = index
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| unsupported(format!("it has no {platform} image")))?;
        let (chosen, _) = client
            .pull_manifest_raw(&image.reference(Some(&entry.digest)), &auth, ACCEPTED)
            .await
            .map_err(|e| failed(format!("cannot get its {platform} manifest: {e}")))?;
        bytes = chosen.to_vec();
        digest = sha256_of(&bytes);
        if digest != entry.digest {
            return Err(failed(format!(
                "the registry sent a manifest with digest {digest} for {}",
                entry.digest
            )));
        }
    }
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| failed(format!("its manifest is not an image manifest: {e}")))?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| MEDIA_OCI_MANIFEST.to_owned());
    for layer in &manifest.layers {
        if !is_supported_layer(&layer.media_type) {
            return Err(unsupported(format!(
                "layer {} is {}, which Berth cannot unpack yet",
                layer.digest, layer.media_type
            )));
        }
    }
    // The config, then the layers side by side; blobs the store has are not fetched again.
    let mut blobs: Vec<&Descriptor> = vec![&manifest.config];
    blobs.extend(&manifest.layers);
    // One transfer for a blob the manifest names twice (one ingest file each blob).
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|b| seen.insert(b.digest.as_str()));
    // Each missing blob on a task of its own, so that several are received and checked on
    // several cores; their progress comes back over a channel.
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let mut fetches = Vec::new();
    for blob in blobs {
        if store.has_blob(&blob.digest)? {
            progress(BlobEvent::Done {
                digest: blob.digest.clone(),
                present: true,
            });
            continue;
        }
        let mut writer = BlobWriter::new(store.open_ingest(&blob.digest)?, blob, events.clone());
        let (client, reference, blob_digest) =
            (client.clone(), reference.clone(), blob.digest.clone());
        let task = tokio::spawn(async move {
            receive_blob(&client, &reference, &mut writer)
                .await
                .map(|()| writer.finish())
                .map_err(|message| format!("cannot get blob {blob_digest}: {message}"))
        });
        fetches.push((blob.digest.clone(), task));
    }
    drop(events);
    while let Some(event) = received.recv().await {
        progress(event);
    }
    // Every task has ended (the channel closed with their writers): keep the blobs whose
    // content checked out, and on any failure none that no image uses.
    let mut outcome = Ok(());
    for (digest, task) in fetches {
        let result = match task.await {
            Ok(Ok((file, path))) => file
                .sync_all()
                .map_err(|e| ImageError::Io {
                    op: "fsync",
                    path: path.clone(),
                    source: e,
                })
                .and_then(|()| store.adopt_blob(&path, &digest))
                .map_err(RemoteError::from),
            Ok(Err(message)) => Err(failed(message)),
            Err(e) => Err(failed(format!("the transfer of blob {digest} failed: {e}"))),
        };
        match result {
            Ok(()) => progress(BlobEvent::Done {
                digest,
                present: false,
            }),
            Err(e) => {
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
    }
    // A pull that failed keeps the blobs that arrived whole and the part of each that broke
    // off, as Docker and containerd do: the next pull asks only for the rest. Garbage
    // collection (`rmi`, `system prune`) removes whole blobs no image uses.
    outcome?;
    let descriptor = store.put_bytes(&media_type, &bytes)?;
    debug_assert_eq!(descriptor.digest, digest);
    let name = image.local_name();
    store.tag(&name, &descriptor)?;
    // Read back as any stored image is: the config and every blob checked.
    Ok(store.resolve(&name.to_string())?)
}

/// Pushes `image` from `store` to `target` (a tag; a digest is what the push makes): blobs the
/// registry has are not sent again, each other one streams from its file, the manifest goes
/// last, byte for byte as stored, so its digest in the registry is the store's. Returns it.
pub async fn push(
    store: &ImageStore,
    image: &Image,
    target: &RemoteImage,
    logins: &[RegistryLogin],
    progress: &(dyn Fn(BlobEvent) + Send + Sync),
) -> Result<String, RemoteError> {
    let failed = |message: String| RemoteError::Registry {
        image: target.to_string(),
        message,
    };
    if target.digest.is_some() {
        return Err(RemoteError::BadReference(format!(
            "{target}: push to a tag; the digest is what the push makes"
        )));
    }
    let (client, auth) = client_for(target, target.login(logins));
    let reference = target.reference(None);
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    let mut blobs: Vec<&Descriptor> = vec![&image.manifest.config];
    blobs.extend(&image.manifest.layers);
    for blob in blobs {
        let there = client
            .blob_exists(&reference, &blob.digest)
            .await
            .map_err(|e| failed(format!("cannot ask for blob {}: {e}", blob.digest)))?;
        if !there {
            let file = store.open_blob_file(&blob.digest)?;
            // oci-client sends each chunk before it asks for the next: what was read before
            // a read is what has gone.
            let chunks =
                futures_util::stream::unfold((file, 0u64), |(mut file, sent)| async move {
                    progress(BlobEvent::Bytes {
                        digest: blob.digest.clone(),
                        done: sent,
                        size: blob.size,
                    });
                    let mut buf = vec![0u8; REPORT_EVERY as usize];
                    match std::io::Read::read(&mut file, &mut buf) {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(bytes::Bytes::from(buf)), (file, sent + n as u64)))
                        }
                        Err(e) => Some((Err(e.into()), (file, sent))),
                    }
                });
            client
                .push_blob_stream(&reference, chunks, &blob.digest)
                .await
                .map_err(|e| failed(format!("cannot send blob {}: {e}", blob.digest)))?;
        }
        progress(BlobEvent::Done {
            digest: blob.digest.clone(),
            present: there,
        });
    }
    let bytes = store.manifest_bytes(image)?;
    let media_type = image
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| MEDIA_OCI_MANIFEST.to_owned());
    let content_type = http::HeaderValue::from_str(&media_type)
        .map_err(|e| failed(format!("the manifest's media type `{media_type}`: {e}")))?;
    client
        .push_manifest_raw(&reference, bytes.clone(), content_type)
        .await
        .map_err(|e| failed(format!("cannot send the manifest: {e}")))?;
    Ok(sha256_of(&bytes))
}

/// Checks `login` with its registry as `docker login` does: the registry's `/v2/` asked
/// anonymously says how it authenticates, then either `/v2/` with the user's basic credentials
/// or a token from the realm its bearer challenge names must be granted. A registry that needs
/// no login at all accepts any.
pub async fn check_login(login: &RegistryLogin) -> Result<(), RemoteError> {
    let registry = login
        .scope
        .split_once('/')
        .map_or(login.scope.as_str(), |(host, _)| host);
    let failed = |message: String| RemoteError::Registry {
        image: registry.to_owned(),
        message,
    };
    let refused = |message: String| RemoteError::LoginRefused {
        registry: registry.to_owned(),
        username: login.username.clone(),
        message,
    };
    let scheme = if is_local(registry) { "http" } else { "https" };
    let base = format!("{scheme}://{registry}/v2/");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| failed(format!("cannot make an HTTP client: {e}")))?;
    let asked = |e: reqwest::Error| failed(format!("cannot reach {base}: {e}"));
    let first = http.get(&base).send().await.map_err(asked)?;
    if first.status().is_success() {
        return Ok(());
    }
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(failed(format!("{base} answered {}", first.status())));
    }
    let header = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let (scheme, params) = parse_challenge(header).ok_or_else(|| {
        failed(format!(
            "{base} asks for a login it does not describe: `{header}`"
        ))
    })?;
    let answer = match scheme.as_str() {
        "basic" => http.get(&base),
        "bearer" => {
            let realm = params.get("realm").ok_or_else(|| {
                failed(format!("its bearer challenge names no realm: `{header}`"))
            })?;
            let mut query = vec![("account", login.username.as_str())];
            if let Some(service) = params.get("service") {
                query.push(("service", service));
            }
            http.get(realm).query(&query)
        }
        other => {
            return Err(failed(format!(
                "it asks for `{other}` authentication, which Berth does not speak"
            )));
        }
    }
    .basic_auth(&login.username, Some(&login.password))
    .send()
    .await
    .map_err(asked)?;
    match answer.status() {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
            Err(refused("the user name or password is wrong".to_owned()))
        }
        s => Err(failed(format!("its login answered {s}"))),
    }
}

/// An HTTP authentication challenge (`Bearer realm="…",service="…"`): the scheme in lower
/// case and its parameters; `None` if it is not one.
fn parse_challenge(text: &str) -> Option<(String, HashMap<String, String>)> {
    let text = text.trim();
    let (scheme, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            // A quoted string: a backslash escapes the next character.
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value);
        rest = after;
    }
    Some((scheme.to_ascii_lowercase(), params))
}

/// Layers Berth unpacks: tar, gzip and zstd tars (OCI and Docker names); foreign layers are
/// refused.
fn is_supported_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, String, String, Option<String>) {
        let r = RemoteImage::parse(text).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn names_are_normalised_as_docker_normalises_them() {
        assert_eq!(
            parsed("busybox"),
            (
                "docker.io".into(),
                "library/busybox".into(),
                "latest".into(),
                None
            )
        );
        assert_eq!(
            parsed("python:3.12-slim"),
            (
                "docker.io".into(),
                "library/python".into(),
                "3.12-slim".into(),
                None
            )
        );
        assert_eq!(
            parsed("index.docker.io/user/app:1"),
            ("docker.io".into(), "user/app".into(), "1".into(), None)
        );
        assert_eq!(
            parsed("localhost:5000/team/app"),
            (
                "localhost:5000".into(),
                "team/app".into(),
                "latest".into(),
                None
            )
        );
        assert_eq!(parsed("ghcr.io/o/r:v2").0, "ghcr.io");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parsed(&format!("quay.io/x/y@{digest}")).3, Some(digest));
        assert!(RemoteImage::parse("Busybox").is_err());
        assert!(RemoteImage::parse("x@sha256:12").is_err());
        assert!(RemoteImage::parse("a b/c").is_err());
        assert!(RemoteImage::parse("../etc").is_err());
    }

    #[test]
    fn challenges_are_read_as_registries_write_them() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(scheme, "bearer");
        assert_eq!(params["realm"], "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:a/b:pull,push");
        let (scheme, params) = parse_challenge(r#"Basic realm="a \"quoted\" realm""#).unwrap();
        assert_eq!(scheme, "basic");
        assert_eq!(params["realm"], r#"a "quoted" realm"#);
        assert_eq!(parse_challenge("Basic").unwrap().0, "basic");
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn local_names_are_docker_s_familiar_ones() {
        let name = |t: &str| RemoteImage::parse(t).unwrap().local_name().to_string();
        assert_eq!(name("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(name("user/app:1"), "user/app:1");
        assert_eq!(name("127.0.0.1:5000/busybox:1"), "127.0.0.1:5000/busybox:1");
        assert!(RemoteImage::parse("127.0.0.1:5000/x").unwrap().is_local());
        assert!(!RemoteImage::parse("ghcr.io/x").unwrap().is_local());
    }
}
