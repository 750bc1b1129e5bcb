//! Real Dockerfile builds on the real kernel, with Debian's static busybox as the starting
//! point; each built image is run and its output checked.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use common::{Fixture, fixture, tar_then_copy};
use container_backend::image::layer::tar_directory;
use std::fs;

#[test]
fn from_scratch_with_copy_run_env_workdir_user_cmd() {
    let Some(f) = fixture() else { return };
    let ctx = f.context(
        "scratch",
        r#"FROM scratch
COPY rootfs/ /
ENV GREETING=hello
WORKDIR /app
RUN echo "built by $(id -u) in $(pwd)" > built.txt
USER app
CMD ["sh", "-c", "echo $GREETING from $(pwd) as $(id -u); cat built.txt"]
"#,
        &[],
    );
    // The busybox tree from the fixture, as context content.
    tar_then_copy(&f.dir.path().join("busybox-rootfs"), &ctx.join("rootfs"));
    let (image, steps) = f.build(&ctx, "hello:1");
    let image = image.unwrap();
    assert_eq!(steps.len(), 7);
    assert!(steps.iter().all(|s| !s.cached));
    assert_eq!(
        image.manifest.layers.len(),
        3,
        "COPY, WORKDIR /app and RUN made layers"
    );
    assert_eq!(
        f.run(&image, &[]),
        "hello from /app as 1000\nbuilt by 0 in /app\n"
    );
}

#[test]
fn entrypoint_with_cmd_arguments() {
    let Some(f) = fixture() else { return };
    let ctx = f.context(
        "entry",
        "FROM busybox\nENTRYPOINT [\"echo\", \"entry\"]\nCMD [\"default-arg\"]\n",
        &[],
    );
    let image = f.build(&ctx, "entry").0.unwrap();
    assert_eq!(f.run(&image, &[]), "entry default-arg\n");
    assert_eq!(f.run(&image, &["given"]), "entry given\n");
}

#[test]
fn multi_stage_copy_from_and_add_of_a_local_tar() {
    let Some(f) = fixture() else { return };
    let payload = f.dir.path().join("payload");
    fs::create_dir_all(payload.join("sub")).unwrap();
    fs::write(payload.join("sub/inside.txt"), "from the archive\n").unwrap();
    let ctx = f.context(
        "multi",
        "FROM busybox AS build\nRUN mkdir -p /out && echo artifact > /out/a.txt\n\
         FROM busybox\nCOPY --from=build /out/a.txt /got.txt\nADD files.tar /data/\n\
         COPY --chown=app:app --chmod=640 *.conf /etc/app/\n\
         CMD [\"sh\", \"-c\", \"cat /got.txt /data/sub/inside.txt; stat -c '%U %a %n' /etc/app/*\"]\n",
        &[],
    );
    tar_directory(&payload, fs::File::create(ctx.join("files.tar")).unwrap()).unwrap();
    fs::write(ctx.join("one.conf"), "1").unwrap();
    fs::write(ctx.join("two.conf"), "2").unwrap();
    let image = f.build(&ctx, "multi").0.unwrap();
    assert_eq!(
        f.run(&image, &[]),
        "artifact\nfrom the archive\napp 640 /etc/app/one.conf\napp 640 /etc/app/two.conf\n",
        "COPY --from, ADD of a tar, and COPY with a glob, --chown and --chmod"
    );
}

#[test]
fn the_cache_reuses_unchanged_steps_and_rebuilds_from_a_changed_copy() {
    let Some(f) = fixture() else { return };
    let ctx = f.context(
        "cache",
        "FROM busybox\nRUN echo one > /one\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy\nCMD [\"cat\", \"/copy\"]\n",
        &[("app.txt", "version 1\n")],
    );
    let (first, steps) = f.build(&ctx, "cached");
    assert!(steps.iter().all(|s| !s.cached));
    let (second, steps) = f.build(&ctx, "cached");
    let cached: Vec<bool> = steps.iter().map(|s| s.cached).collect();
    assert_eq!(
        cached,
        [false, true, true, true, false],
        "every filesystem step reused"
    );
    assert_eq!(
        first.unwrap().manifest.layers,
        second.as_ref().unwrap().manifest.layers
    );

    fs::write(ctx.join("app.txt"), "version 2\n").unwrap();
    let (third, steps) = f.build(&ctx, "cached");
    let cached: Vec<bool> = steps.iter().map(|s| s.cached).collect();
    assert_eq!(
        cached,
        [false, true, false, false, false],
        "rebuilt from the COPY on"
    );
    assert_eq!(f.run(&third.unwrap(), &[]), "version 2\n");
}

#[test]
fn bad_input_is_a_clear_error_with_the_line_and_leaves_nothing() {
    let Some(f) = fixture() else { return };
    let outside = f.dir.path().join("outside-secret");
    fs::write(&outside, "secret").unwrap();
    let blobs = |f: &Fixture| {
        fs::read_dir(f.store.root().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs(&f);
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "unknown",
            "FROM busybox\nFROB x\n",
            2,
            "unknown instruction `FROB`",
        ),
        (
            "missing",
            "FROM busybox\nRUN true\nCOPY nothere.txt /x\n",
            3,
            "`nothere.txt` is not in the build context",
        ),
        (
            "escape",
            "FROM busybox\nCOPY ../x /x\n",
            2,
            "outside the build context",
        ),
        (
            "symlink",
            "FROM busybox\nCOPY link /x\n",
            2,
            // Followed within the context, as BuildKit follows it: the host file is not there.
            "which is not in the build context",
        ),
        (
            "fails",
            "FROM busybox\nRUN echo about to fail; exit 3\n",
            2,
            "RUN exited with code 3:\nabout to fail",
        ),
        (
            "noimage",
            "FROM nosuchimage\n",
            1,
            "no image named `nosuchimage:latest`",
        ),
    ];
    for (name, dockerfile, line, message) in cases {
        let ctx = f.context(name, dockerfile, &[]);
        if *name == "symlink" {
            std::os::unix::fs::symlink(&outside, ctx.join("link")).unwrap();
        }
        let err = f.build(&ctx, name).0.unwrap_err();
        assert_eq!(err.line, Some(*line), "{name}: {err}");
        assert!(err.to_string().contains(message), "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("Dockerfile line {line}: ")),
            "{name}: {err}"
        );
        assert!(f.store.resolve(name).is_err(), "{name}: nothing is named");
    }
    assert_eq!(blobs(&f), before, "nothing is left half-built in the store");
}
