//! The image store against real files: import, layers with whiteouts, removal with garbage
//! collection, and damaged or wrong input.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::fs;
use std::path::Path;

use container_backend::image::layer::{digest_of, tar_directory};
use container_backend::image::oci::ImageConfig;
use container_backend::image::{ImageError, ImageStore, Reference};

/// A small root filesystem with a file, a directory, a symlink and an executable.
fn make_rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(
        dir.join("bin/hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fs::write(dir.join("etc/hostname"), b"berth\n").unwrap();
    std::os::unix::fs::symlink("hello", dir.join("bin/hi")).unwrap();
}

fn tar_file(src: &Path, out: &Path) {
    tar_directory(src, fs::File::create(out).unwrap()).unwrap();
}

fn blob_names(store: &ImageStore) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn import_unpack_layer_and_remove() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("images")).unwrap();
    let rootfs = work.path().join("rootfs");
    make_rootfs(&rootfs);
    let tarball = work.path().join("rootfs.tar");
    tar_file(&rootfs, &tarball);

    let imported = store.import(&tarball, "base:1").unwrap();
    assert_eq!(imported.len(), 1);
    let base = &imported[0];
    assert_eq!(base.reference.to_string(), "base:1");
    assert_eq!(base.manifest.layers.len(), 1);
    assert_eq!(base.config.rootfs.diff_ids.len(), 1);
    assert_eq!(
        base.config.rootfs.diff_ids[0],
        digest_of(&fs::read(&tarball).unwrap()),
        "diff id is the tar's digest"
    );

    // Every blob is named by the digest of its content.
    for name in blob_names(&store) {
        let bytes = fs::read(store.root().join("blobs/sha256").join(&name)).unwrap();
        assert_eq!(digest_of(&bytes), format!("sha256:{name}"));
    }
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(store.root().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");

    let out = work.path().join("unpacked");
    store.unpack(base, &out).unwrap();
    assert_eq!(fs::read(out.join("etc/hostname")).unwrap(), b"berth\n");
    assert_eq!(
        fs::read_link(out.join("bin/hi")).unwrap(),
        Path::new("hello")
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(out.join("bin/hello")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o755);

    // A second layer that deletes a file and adds one, committed as a new image.
    let upper = work.path().join("upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::write(upper.join("etc/.wh.hostname"), b"").unwrap();
    fs::write(upper.join("etc/motd"), b"welcome\n").unwrap();
    let upper_tar = work.path().join("upper.tar");
    tar_file(&upper, &upper_tar);
    let (layer, diff_id) = store
        .put_layer(fs::File::open(&upper_tar).unwrap())
        .unwrap();
    let mut config: ImageConfig = base.config.clone();
    config.rootfs.diff_ids.push(diff_id);
    config.config.cmd = Some(vec!["/bin/hello".into()]);
    let mut layers = base.manifest.layers.clone();
    layers.push(layer);
    let derived = store
        .commit(&Reference::parse("derived").unwrap(), &config, layers)
        .unwrap();
    assert_eq!(
        derived.config.config.cmd.as_deref(),
        Some(&["/bin/hello".to_owned()][..])
    );

    let out2 = work.path().join("unpacked2");
    store.unpack(&derived, &out2).unwrap();
    assert!(
        !out2.join("etc/hostname").exists(),
        "the whiteout removed it"
    );
    assert_eq!(fs::read(out2.join("etc/motd")).unwrap(), b"welcome\n");
    assert_eq!(
        fs::read(out2.join("bin/hello")).unwrap(),
        fs::read(rootfs.join("bin/hello")).unwrap()
    );

    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|i| i.reference.to_string())
        .collect();
    assert_eq!(names, ["base:1", "derived:latest"]);

    // Removing the base keeps the layer the derived image shares; removing both empties the store.
    let before = blob_names(&store).len();
    store.remove("base:1").unwrap();
    let after = blob_names(&store);
    assert_eq!(
        after.len(),
        before - 2,
        "only base's own manifest and config went"
    );
    assert!(after.contains(&base.manifest.layers[0].digest["sha256:".len()..].to_owned()));
    store.remove("derived").unwrap();
    assert!(blob_names(&store).is_empty(), "{:?}", blob_names(&store));
    assert!(matches!(
        store.resolve("derived"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn damaged_blobs_are_detected() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("images")).unwrap();
    let rootfs = work.path().join("rootfs");
    make_rootfs(&rootfs);
    let tarball = work.path().join("rootfs.tar");
    tar_file(&rootfs, &tarball);
    let image = store.import(&tarball, "victim").unwrap().remove(0);

    // Replace the layer blob with a different valid gzip tar: the diff id no longer matches.
    let other = work.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("x"), b"x").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    tar_directory(&other, &mut gz).unwrap();
    let layer_path = store
        .root()
        .join("blobs/sha256")
        .join(&image.manifest.layers[0].digest["sha256:".len()..]);
    fs::write(&layer_path, gz.finish().unwrap()).unwrap();
    let err = store.unpack(&image, &work.path().join("out")).unwrap_err();
    assert!(
        matches!(err, ImageError::Corrupt(_)) && err.to_string().contains("diff id"),
        "{err}"
    );

    // A manifest changed on disk no longer matches its digest.
    let manifest_path = store
        .root()
        .join("blobs/sha256")
        .join(&image.manifest_digest["sha256:".len()..]);
    let mut bytes = fs::read(&manifest_path).unwrap();
    bytes.push(b' ');
    fs::write(&manifest_path, bytes).unwrap();
    let err = store.resolve("victim").unwrap_err();
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
}

#[test]
fn bad_imports_are_refused_and_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("images")).unwrap();
    let random = work.path().join("random.bin");
    fs::write(
        &random,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let err = store.import(&random, "r").unwrap_err();
    assert!(
        err.to_string().contains("not a") && err.to_string().contains("random.bin"),
        "{err}"
    );

    let empty = work.path().join("empty.tar");
    fs::write(&empty, [0u8; 1024]).unwrap();
    assert!(
        store
            .import(&empty, "e")
            .unwrap_err()
            .to_string()
            .contains("empty")
    );

    let missing = work.path().join("missing.tar");
    assert!(store.import(&missing, "m").is_err());

    let rootfs = work.path().join("rootfs");
    make_rootfs(&rootfs);
    let tarball = work.path().join("rootfs.tar");
    tar_file(&rootfs, &tarball);
    let err = store.import(&tarball, "Bad Name").unwrap_err();
    assert!(err.to_string().contains("not an image name"), "{err}");

    assert!(blob_names(&store).is_empty());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn oci_archives_import_with_their_layers() {
    let work = tempfile::tempdir().unwrap();
    // Make an OCI layout with one image, as another tool would, and archive it (gzip).
    let source = ImageStore::open(&work.path().join("source")).unwrap();
    let rootfs = work.path().join("rootfs");
    make_rootfs(&rootfs);
    let tarball = work.path().join("rootfs.tar");
    tar_file(&rootfs, &tarball);
    let original = source.import(&tarball, "exported:2").unwrap().remove(0);
    let archive = work.path().join("image.oci.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&archive).unwrap(),
        flate2::Compression::fast(),
    );
    tar_directory(source.root(), &mut gz).unwrap();
    gz.finish().unwrap();

    let store = ImageStore::open(&work.path().join("images")).unwrap();
    let imported = store.import(&archive, "renamed:1").unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference.to_string(), "renamed:1");
    assert_eq!(imported[0].id(), original.id(), "same config, same id");
    let out = work.path().join("out");
    store.unpack(&imported[0], &out).unwrap();
    assert_eq!(fs::read(out.join("etc/hostname")).unwrap(), b"berth\n");

    // A docker-save archive is named as such.
    let docker = work.path().join("docker");
    fs::create_dir(&docker).unwrap();
    fs::write(docker.join("manifest.json"), b"[]").unwrap();
    let docker_tar = work.path().join("docker.tar");
    tar_file(&docker, &docker_tar);
    let store2 = ImageStore::open(&work.path().join("images2")).unwrap();
    // Without oci-layout `import` takes it as a rootfs; renamed as an OCI archive it is refused
    // clearly; loaded, one without images says so.
    let err = store2
        .import_oci_archive(&docker_tar, Some("x:1"))
        .unwrap_err();
    assert!(err.to_string().contains("load it"), "{err}");
    let err = store2.load(&docker_tar).unwrap_err();
    assert!(err.to_string().contains("holds no image"), "{err}");
}
