//! `RUN --mount=…` as BuildKit reads it: `type=bind` (a file or directory of the context, of an
//! earlier stage or of an image, read-only unless `rw`, whose writes are thrown away),
//! `type=cache` (a directory kept between builds), `type=tmpfs` (an empty memory filesystem
//! for the step), `type=secret` (a file of the client's, never in a layer) and `type=ssh` (the
//! client's SSH agent's socket, its keys never in the build; a socket of the step's own relaying
//! to it for another owner or mode).

/// One `--mount` of a RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    Bind {
        /// Where in the container (absolute, or relative to the WORKDIR).
        target: String,
        /// What is mounted: a path in the context or in `from` (empty: its root).
        source: String,
        /// An earlier stage (its name or index) or an image; none: the build context.
        from: Option<String>,
        /// Writes allowed, on a copy thrown away after the step (BuildKit's `rw`); read-only
        /// by default.
        read_write: bool,
    },
    Cache {
        /// Where in the container (absolute, or relative to the WORKDIR).
        target: String,
        /// Which cache: builds sharing an id share the directory (default: the target).
        id: String,
        /// An earlier stage (its name or index) or an image whose `source` fills the cache
        /// when it is made, as BuildKit bases it there; the cache is then that base's.
        from: Option<String>,
        /// With `from`: the directory of it that seeds the cache; without: the directory of
        /// the cache that is mounted (empty: all of it).
        source: String,
        read_only: bool,
        /// The owner and mode the directory is made with.
        uid: u32,
        gid: u32,
        mode: u32,
    },
    Tmpfs {
        /// Where in the container (absolute, or relative to the WORKDIR).
        target: String,
        /// Its size limit in bytes (`size=`, e.g. `64m`); none: the kernel's default.
        size: Option<u64>,
    },
    Ssh {
        /// Which agent of the build's (`--ssh ID`); `default` unless named.
        id: String,
        /// Where its socket goes; default `/run/buildkit/ssh_agent.0`.
        target: String,
        /// Fail when the build was given no such agent (else the step runs without it).
        required: bool,
        /// `uid=`, `gid=`, `mode=` other than BuildKit's defaults (0, 0, 0600): the socket is
        /// one of the step's own with that owner and mode, relaying to the agent.
        owner: Option<(u32, u32, u32)>,
    },
    Secret {
        id: String,
        /// Default `/run/secrets/<id>`.
        target: String,
        /// Fail when the build was given no such secret (else the step runs without it).
        required: bool,
    },
}

/// The names a mount's target goes by.
const TARGET: &[&str] = &["target", "dst", "destination"];
/// The options that give a mounted file its owner and mode.
const OWNED: &[&str] = &["mode", "uid", "gid"];
/// The names of what is mounted and where it is taken from.
const SOURCE: &[&str] = &["from", "source", "src"];
/// The names of a read-only flag.
const READ_ONLY: &[&str] = &["readonly", "ro"];

/// Parses one `--mount` value: comma-separated `key=value` (or bare `key` for booleans).
pub fn parse(text: &str) -> Result<RunMount, String> {
    let bad = |why: String| format!("RUN --mount={text}: {why}");
    let mut kind = "bind".to_owned();
    let mut fields: Vec<(String, Option<String>)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
            None => (part.to_ascii_lowercase(), None),
        };
        if key == "type" {
            kind = value.unwrap_or_default();
        } else {
            fields.push((key, value));
        }
    }
    let value = |names: &[&str]| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .and_then(|(_, v)| v.clone())
    };
    let boolean = |names: &[&str]| -> Result<bool, String> {
        match fields
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
        {
            None => Ok(false),
            Some((_, None)) => Ok(true),
            Some((k, Some(v))) => match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(bad(format!("{k}={other}: true or false"))),
            },
        }
    };
    let number = |name: &str, radix: u32, default: u32| -> Result<u32, String> {
        match value(&[name]) {
            None => Ok(default),
            Some(v) => u32::from_str_radix(&v, radix)
                .map_err(|_| bad(format!("{name}={v} is not a number"))),
        }
    };
    let known = |allowed: &[&str]| -> Result<(), String> {
        match fields.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(bad(format!("`{k}` is not an option of a {kind} mount"))),
            None => Ok(()),
        }
    };
    match kind.as_str() {
        "bind" => {
            known(&[TARGET, SOURCE, READ_ONLY, &["rw", "readwrite"]].concat())?;
            let target =
                value(TARGET).ok_or_else(|| bad("a bind mount needs target=PATH".into()))?;
            let read_write = boolean(&["rw", "readwrite"])?;
            if read_write && boolean(READ_ONLY)? {
                return Err(bad("rw and readonly together".into()));
            }
            Ok(RunMount::Bind {
                target,
                source: value(&["source", "src"]).unwrap_or_default(),
                from: value(&["from"]),
                read_write,
            })
        }
        "ssh" => {
            known(&[OWNED, &["id", "required"], TARGET].concat())?;
            let owner = (
                number("uid", 10, 0)?,
                number("gid", 10, 0)?,
                number("mode", 8, 0o600)?,
            );
            Ok(RunMount::Ssh {
                id: value(&["id"]).unwrap_or_else(|| "default".into()),
                target: value(TARGET).unwrap_or_else(|| "/run/buildkit/ssh_agent.0".into()),
                required: boolean(&["required"])?,
                owner: (owner != (0, 0, 0o600)).then_some(owner),
            })
        }
        "tmpfs" => {
            known(&[TARGET, &["size"]].concat())?;
            let target =
                value(TARGET).ok_or_else(|| bad("a tmpfs mount needs target=PATH".into()))?;
            let size = value(&["size"])
                .map(|v| berth_api::size::parse_size(&v).map_err(|e| bad(format!("size: {e}"))))
                .transpose()?;
            Ok(RunMount::Tmpfs { target, size })
        }
        "cache" => {
            known(&[TARGET, SOURCE, READ_ONLY, OWNED, &["id", "sharing"]].concat())?;
            let target =
                value(TARGET).ok_or_else(|| bad("a cache mount needs target=PATH".into()))?;
            if let Some(sharing) = value(&["sharing"])
                && !matches!(sharing.as_str(), "shared" | "private" | "locked")
            {
                return Err(bad(format!("sharing={sharing}: shared, private or locked")));
            }
            Ok(RunMount::Cache {
                id: value(&["id"]).unwrap_or_else(|| target.clone()),
                from: value(&["from"]),
                source: value(&["source", "src"]).unwrap_or_default(),
                target,
                read_only: boolean(READ_ONLY)?,
                uid: number("uid", 10, 0)?,
                gid: number("gid", 10, 0)?,
                mode: number("mode", 8, 0o755)?,
            })
        }
        "secret" => {
            known(&[OWNED, &["id", "required", "env"], TARGET].concat())?;
            if value(&["env"]).is_some() {
                return Err(bad(
                    "a secret as an environment variable (env=) is not supported yet".into(),
                ));
            }
            let target = value(TARGET);
            let id = match (value(&["id"]), &target) {
                (Some(id), _) => id,
                (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_owned(),
                (None, None) => return Err(bad("a secret mount needs id=ID".into())),
            };
            if id.is_empty() {
                return Err(bad("a secret mount needs id=ID".into()));
            }
            Ok(RunMount::Secret {
                target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                id,
                required: boolean(&["required"])?,
            })
        }
        other => Err(bad(format!(
            "type={other} is not supported: bind, cache, tmpfs, secret or ssh"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_read_as_buildkit_reads_them() {
        assert_eq!(
            parse("type=cache,target=/root/.cache").unwrap(),
            RunMount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                from: None,
                source: String::new(),
                read_only: false,
                uid: 0,
                gid: 0,
                mode: 0o755,
            }
        );
        assert_eq!(
            parse("type=cache,id=cargo,dst=/usr/local/cargo/registry,uid=1000,mode=0700,ro")
                .unwrap(),
            RunMount::Cache {
                target: "/usr/local/cargo/registry".into(),
                id: "cargo".into(),
                from: None,
                source: String::new(),
                read_only: true,
                uid: 1000,
                gid: 0,
                mode: 0o700,
            }
        );
        assert_eq!(
            parse("type=cache,target=/deps,from=deps,source=/out").unwrap(),
            RunMount::Cache {
                target: "/deps".into(),
                id: "/deps".into(),
                from: Some("deps".into()),
                source: "/out".into(),
                read_only: false,
                uid: 0,
                gid: 0,
                mode: 0o755,
            }
        );
        assert_eq!(
            parse("type=secret,id=npmrc,target=/root/.npmrc,required=true").unwrap(),
            RunMount::Secret {
                id: "npmrc".into(),
                target: "/root/.npmrc".into(),
                required: true,
            }
        );
        assert_eq!(
            parse("type=secret,id=token").unwrap(),
            RunMount::Secret {
                id: "token".into(),
                target: "/run/secrets/token".into(),
                required: false,
            }
        );
        assert_eq!(
            parse("type=ssh").unwrap(),
            RunMount::Ssh {
                id: "default".into(),
                target: "/run/buildkit/ssh_agent.0".into(),
                required: false,
                owner: None,
            }
        );
        assert_eq!(
            parse("type=ssh,uid=1000,gid=1000,mode=0660").unwrap(),
            RunMount::Ssh {
                id: "default".into(),
                target: "/run/buildkit/ssh_agent.0".into(),
                required: false,
                owner: Some((1000, 1000, 0o660)),
            }
        );
        assert_eq!(
            parse("type=tmpfs,target=/scratch,size=64m").unwrap(),
            RunMount::Tmpfs {
                target: "/scratch".into(),
                size: Some(64 << 20),
            }
        );
        // The default type is bind, read-only, from the context's root.
        assert_eq!(
            parse("target=/src").unwrap(),
            RunMount::Bind {
                target: "/src".into(),
                source: String::new(),
                from: None,
                read_write: false,
            }
        );
        assert_eq!(
            parse("type=bind,from=build,source=/out/app,dst=/app,rw").unwrap(),
            RunMount::Bind {
                target: "/app".into(),
                source: "/out/app".into(),
                from: Some("build".into()),
                read_write: true,
            }
        );
        for (text, says) in [
            ("type=bind,source=x", "needs target"),
            ("type=bind,target=/x,rw,ro", "rw and readonly"),
            ("type=bind,target=/x,id=1", "`id`"),
            ("type=npipe,target=/p", "type=npipe is not supported"),
            ("type=ssh,uid=me", "uid=me"),
            ("type=tmpfs", "needs target"),
            ("type=tmpfs,target=/t,size=lots", "size"),
            ("type=cache", "needs target"),
            ("type=cache,target=/c,sharing=some", "sharing=some"),
            ("type=cache,target=/c,bogus=1", "`bogus`"),
            ("type=secret", "needs id"),
            ("type=cache,target=/c,uid=x", "uid=x"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
