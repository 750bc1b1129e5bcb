//! Launch a Dockerfile: pick a folder (its Dockerfile, or another one), name the image and the
//! container, set limits while U_ct and M_ct show their share, then Launch: the build's steps
//! stream in as they run, and the container starts when the build succeeds. A failed build
//! shows the failing line and the form stays usable.

use std::path::{Path, PathBuf};

use berth_api::container::{BuildSpec, RestartPolicy, RunSpec};
use berth_api::network::{ContainerNetwork, PortForward};
use berth_api::size::{format_size, parse_size};
use berth_api::utilisation::{Resources, container_allocation};
use berth_api::volume::VolumeMount;
use iced::Element;
use iced::widget::{
    button, checkbox, column, container, pick_list, row, scrollable, text, text_input,
};

use crate::data::networks::{CONTAINER_CHOICES, Choice};
use crate::theme::danger;
use crate::widget::form::field;
use crate::widget::gauge::gauge;

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Folder(String),
    Dockerfile(String),
    Tag(String),
    Name(String),
    Cpus(String),
    Memory(String),
    Ports(String),
    /// Publish the ports the Dockerfile EXPOSEs (`-P`).
    PublishExposed(bool),
    Env(String),
    Volumes(String),
    Restart(RestartPolicy),
    Network(Choice<ContainerNetwork>),
    Launch,
    Cancel,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Build this, then run the result with this spec.
    Launch(Box<(BuildSpec, RunSpec)>),
    Cancel,
}

/// The restart policies the form offers (`on-failure` without a limit).
const RESTART_CHOICES: [RestartPolicy; 4] = [
    RestartPolicy::No,
    RestartPolicy::OnFailure { max_retries: None },
    RestartPolicy::Always,
    RestartPolicy::UnlessStopped,
];

/// One line of the build's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLine {
    pub text: String,
    pub cached: bool,
}

#[derive(Debug, Clone)]
pub struct Launch {
    pub folder: String,
    pub dockerfile: String,
    pub tag: String,
    pub name: String,
    pub cpus: String,
    pub memory: String,
    /// Published ports, `-p` specs separated by spaces or commas.
    pub ports: String,
    /// Publish every EXPOSEd port on a free host port, so the app is reachable after one
    /// click; on unless the user turns it off.
    pub publish_exposed: bool,
    /// `NAME=VALUE`s separated by spaces (`-e`).
    pub env: String,
    /// `SOURCE:TARGET[:ro]`s separated by spaces (`-v`): absolute host paths or volume names.
    pub volumes: String,
    pub restart: RestartPolicy,
    /// The container's network: the daemon's default until the user picks another.
    pub network: ContainerNetwork,
    host: Resources,
    pub steps: Vec<StepLine>,
    pub busy: bool,
    pub error: Option<String>,
}

/// An image name from a folder name: lowercase, other characters as `-`.
fn tag_for(folder: &str) -> String {
    let base = Path::new(folder.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

impl Launch {
    pub fn new(host: Resources, network: ContainerNetwork) -> Launch {
        Launch {
            folder: String::new(),
            dockerfile: String::new(),
            tag: String::new(),
            name: String::new(),
            cpus: String::new(),
            memory: String::new(),
            ports: String::new(),
            publish_exposed: true,
            env: String::new(),
            volumes: String::new(),
            restart: RestartPolicy::No,
            network,
            host,
            steps: Vec::new(),
            busy: false,
            error: None,
        }
    }

    /// The requests the form describes, once every field is right.
    pub fn requests(&self) -> Result<(BuildSpec, RunSpec), String> {
        let folder = self.folder.trim();
        if folder.is_empty() {
            return Err("choose the folder with the Dockerfile (the build context)".into());
        }
        if !folder.starts_with('/') {
            return Err("the folder path must be absolute (start with /)".into());
        }
        let tag = if self.tag.trim().is_empty() {
            tag_for(folder)
        } else {
            self.tag.trim().to_owned()
        };
        if tag.is_empty() {
            return Err("give the image a name".into());
        }
        let name = Some(self.name.trim().to_owned()).filter(|n| !n.is_empty());
        if let Some(n) = &name {
            berth_api::validate::name("container", n)?;
        }
        let cpus = match self.cpus.trim() {
            "" => None,
            c => match c.parse::<f64>() {
                Ok(v) if v > 0.0 && v <= self.host.cpus => Some(v),
                _ => {
                    return Err(format!(
                        "CPUs: a number above 0 and at most {}",
                        self.host.cpus
                    ));
                }
            },
        };
        let memory = match self.memory.trim() {
            "" => None,
            m => Some(parse_size(m).map_err(|e| format!("memory: {e}"))?),
        };
        let ports = self
            .ports
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<PortForward>().map_err(|e| format!("ports: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        berth_api::validate::ports(self.network, &ports).map_err(|e| format!("ports: {e}"))?;
        let env: Vec<String> = self.env.split_whitespace().map(str::to_owned).collect();
        for var in &env {
            berth_api::validate::env_var(var).map_err(|e| format!("environment: {e}"))?;
        }
        let volumes = self
            .volumes
            .split_whitespace()
            .map(|v| {
                v.parse::<VolumeMount>()
                    .map_err(|e| format!("volumes: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dockerfile = Some(self.dockerfile.trim())
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let build = BuildSpec {
            context: folder.into(),
            dockerfile,
            tag: tag.clone(),
            build_args: vec![],
            // Read when the build is asked for (`update`), not at every look at the form.
            ..BuildSpec::default()
        };
        let run = RunSpec {
            image: tag,
            name,
            command: vec![],
            detach: true,
            cpus,
            memory,
            pids: None,
            network: Some(self.network),
            ports,
            // A container without a network publishes nothing.
            publish_all: self.publish_exposed && self.network != ContainerNetwork::None,
            env,
            volumes,
            restart: self.restart,
            // The image is the one just built: nothing to pull.
            ..RunSpec::default()
        };
        Ok((build, run))
    }

    pub fn update(&mut self, message: Message) -> Option<Event> {
        match message {
            Message::Folder(v) => self.folder = v,
            Message::Dockerfile(v) => self.dockerfile = v,
            Message::Tag(v) => self.tag = v,
            Message::Name(v) => self.name = v,
            Message::Cpus(v) => self.cpus = v,
            Message::Memory(v) => self.memory = v,
            Message::Ports(v) => self.ports = v,
            Message::PublishExposed(v) => self.publish_exposed = v,
            Message::Env(v) => self.env = v,
            Message::Volumes(v) => self.volumes = v,
            Message::Restart(v) => self.restart = v,
            Message::Network(Choice(v)) => self.network = v,
            Message::Cancel => return Some(Event::Cancel),
            Message::Launch => {
                let (mut build, run) = self.requests().ok()?;
                if self.busy {
                    return None;
                }
                // The user's registry logins, for the images the Dockerfile's FROMs pull.
                match berth_api::auth_file::AuthFiles::from_env().logins() {
                    Ok(logins) => build.logins = logins,
                    Err(e) => {
                        self.error = Some(format!("cannot read your registry logins: {e}"));
                        return None;
                    }
                }
                self.busy = true;
                self.error = None;
                self.steps.clear();
                return Some(Event::Launch(Box::new((build, run))));
            }
        }
        None
    }

    /// A build step was reached.
    pub fn step(&mut self, text: String, cached: bool) {
        self.steps.push(StepLine { text, cached });
    }

    /// The build or the start failed: show why, and let the user try again.
    pub fn failed(&mut self, message: String) {
        self.busy = false;
        self.error = Some(message);
    }

    pub fn view(&self) -> Element<'_, Message> {
        let limits = Resources {
            cpus: self.cpus.trim().parse().unwrap_or(self.host.cpus),
            memory: parse_size(self.memory.trim()).unwrap_or(self.host.memory),
            disk: 0,
        };
        let share = container_allocation(&limits, &self.host);
        let mut page = column![
            text("Launch a Dockerfile").size(22),
            field(
                "Folder",
                text_input("/path/to/project", &self.folder)
                    .id("folder")
                    .on_input(Message::Folder)
                    .on_submit(Message::Launch)
            ),
            field(
                "Dockerfile",
                text_input("default: <folder>/Dockerfile", &self.dockerfile)
                    .on_input(Message::Dockerfile)
            ),
            field(
                "Image",
                text_input(&format!("default: {}", tag_for(&self.folder)), &self.tag)
                    .on_input(Message::Tag)
            ),
            field(
                "Container",
                text_input("default: from the image", &self.name).on_input(Message::Name)
            ),
            field(
                "CPUs",
                text_input("no limit, e.g. 0.5", &self.cpus).on_input(Message::Cpus)
            ),
            gauge(
                "U_ct",
                share.cpu,
                format!("of the host's {} CPUs", self.host.cpus)
            ),
            field(
                "Memory",
                text_input("no limit, e.g. 256M", &self.memory).on_input(Message::Memory)
            ),
            gauge(
                "M_ct",
                share.memory,
                format!("of the host's {}", format_size(self.host.memory))
            ),
            field(
                "Network",
                pick_list(
                    CONTAINER_CHOICES,
                    Some(Choice(self.network)),
                    Message::Network
                )
            ),
            field(
                "Ports",
                text_input("none published, e.g. 127.0.0.1:8080:80", &self.ports)
                    .id("ports")
                    .on_input(Message::Ports)
                    .on_submit(Message::Launch)
            ),
            checkbox(self.publish_exposed)
                .label("Also publish the ports the Dockerfile EXPOSEs (on free host ports)")
                .on_toggle(Message::PublishExposed),
            field(
                "Environment",
                text_input("none, e.g. MODE=dev PORT=8080", &self.env)
                    .id("env")
                    .on_input(Message::Env)
                    .on_submit(Message::Launch)
            ),
            field(
                "Volumes",
                text_input("none, e.g. /home/me/data:/data cache:/cache", &self.volumes)
                    .id("volumes")
                    .on_input(Message::Volumes)
                    .on_submit(Message::Launch)
            ),
            field(
                "Restart",
                pick_list(RESTART_CHOICES, Some(self.restart), Message::Restart)
            ),
        ]
        .spacing(8);
        if let Err(problem) = self.requests() {
            page = page.push(text(problem).size(13).style(danger));
        }
        if let Some(error) = &self.error {
            page = page.push(text(error.clone()).style(danger));
        }
        let launch = button(text(if self.busy { "Building…" } else { "Launch" }))
            .style(button::primary)
            .on_press_maybe((self.requests().is_ok() && !self.busy).then_some(Message::Launch));
        page = page.push(
            row![
                launch,
                button(text("Cancel"))
                    .style(button::secondary)
                    .on_press(Message::Cancel)
            ]
            .spacing(10),
        );
        if !self.steps.is_empty() {
            let steps = self.steps.iter().fold(column![].spacing(2), |col, s| {
                col.push(
                    text(format!(
                        "{}{}",
                        s.text,
                        if s.cached { "  (cached)" } else { "" }
                    ))
                    .size(13)
                    .font(iced::Font::MONOSPACE),
                )
            });
            page = page.push(text("Build").size(15)).push(
                container(scrollable(steps))
                    .max_height(240.0)
                    .padding(8)
                    .style(container::bordered_box),
            );
        }
        container(page).padding(16).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_test::simulator;

    const HOST: Resources = Resources {
        cpus: 2.0,
        memory: 8 << 30,
        disk: 100 << 30,
    };

    #[test]
    fn a_folder_is_enough_and_names_come_from_it() {
        let mut launch = Launch::new(HOST, ContainerNetwork::Bridge);
        let messages: Vec<Message> = {
            let mut ui = simulator(launch.view());
            ui.click(iced::widget::Id::new("folder")).unwrap();
            ui.typewrite("/home/me/My App");
            ui.into_messages().collect()
        };
        for m in messages {
            launch.update(m);
        }
        let (build, run) = launch.requests().unwrap();
        assert_eq!(build.context, PathBuf::from("/home/me/My App"));
        assert_eq!(
            (build.tag.as_str(), run.image.as_str()),
            ("my-app", "my-app")
        );
        assert!(run.detach && run.cpus.is_none() && run.memory.is_none());
        let events: Vec<Event> = {
            let mut ui = simulator(launch.view());
            ui.click("Launch").unwrap();
            ui.into_messages().collect::<Vec<_>>()
        }
        .into_iter()
        .filter_map(|m| launch.update(m))
        .collect();
        assert!(matches!(events.as_slice(), [Event::Launch(l)] if l.0.tag == "my-app"));
        assert!(launch.busy);
    }

    #[test]
    fn bad_limits_are_refused_and_a_failed_build_leaves_the_form_usable() {
        let mut launch = Launch::new(HOST, ContainerNetwork::Bridge);
        launch.update(Message::Folder("/src".into()));
        launch.update(Message::Cpus("4".into()));
        assert!(launch.requests().unwrap_err().contains("at most 2"));
        launch.update(Message::Cpus("0.5".into()));
        launch.update(Message::Memory("lots".into()));
        assert!(launch.requests().unwrap_err().starts_with("memory:"));
        launch.update(Message::Memory("256M".into()));
        launch.update(Message::Ports("8080:80/udp, 99999:80".into()));
        assert!(
            launch
                .requests()
                .unwrap_err()
                .contains("ports: -p 99999:80"),
            "{:?}",
            launch.requests()
        );
        launch.update(Message::Ports("127.0.0.1:8080:80 2222:22".into()));
        assert_eq!(
            launch.requests().unwrap().1.ports,
            [
                "127.0.0.1:8080:80".parse().unwrap(),
                "2222:22".parse().unwrap()
            ]
        );
        assert!(
            launch.requests().unwrap().1.publish_all,
            "EXPOSEd ports are published unless the box is cleared"
        );
        launch.update(Message::PublishExposed(false));
        assert!(!launch.requests().unwrap().1.publish_all);
        assert!(
            matches!(launch.update(Message::Launch), Some(Event::Launch(l)) if l.1.cpus == Some(0.5) && l.1.memory == Some(256 << 20))
        );
        launch.update(Message::Env("MODE=dev bad".into()));
        assert!(launch.requests().unwrap_err().starts_with("environment:"));
        launch.update(Message::Env("MODE=dev PORT=8080".into()));
        launch.update(Message::Volumes("relative:/x:zz".into()));
        assert!(launch.requests().unwrap_err().starts_with("volumes:"));
        launch.update(Message::Volumes(
            "/home/me/data:/data cache:/cache:ro".into(),
        ));
        launch.update(Message::Restart(RestartPolicy::UnlessStopped));
        let run = launch.requests().unwrap().1;
        assert_eq!(run.env, ["MODE=dev", "PORT=8080"]);
        assert_eq!(
            run.volumes,
            [
                "/home/me/data:/data".parse().unwrap(),
                "cache:/cache:ro".parse().unwrap()
            ]
        );
        assert_eq!(run.restart, RestartPolicy::UnlessStopped);
        launch.step("FROM busybox".into(), false);
        launch.failed("Dockerfile line 3: RUN exited with code 1".into());
        let mut ui = simulator(launch.view());
        assert!(ui.find("Dockerfile line 3: RUN exited with code 1").is_ok());
        assert!(
            ui.find("FROM busybox").is_ok(),
            "the steps so far stay visible"
        );
        assert!(ui.click("Launch").is_ok());
        assert_eq!(
            ui.into_messages().collect::<Vec<_>>(),
            vec![Message::Launch],
            "Launch is offered again"
        );
    }
}
