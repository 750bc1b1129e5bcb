//! The window's colours, all taken from the theme's palette, so a dark theme colours the
//! states, warnings and banners as well as a light one.

use berth_api::container::ContainerState;
use berth_api::vm::VmState;
use iced::widget::{container, text};
use iced::{Color, Theme};

/// A VM's state: running in the success colour, on its way (starting, stopping, paused) in
/// the warning colour, crashed in the danger colour, stopped muted.
pub fn vm_state(theme: &Theme, state: &VmState) -> Color {
    let palette = theme.extended_palette();
    match state {
        VmState::Running => palette.success.base.color,
        VmState::Paused | VmState::Starting | VmState::Stopping => palette.warning.base.color,
        VmState::Crashed { .. } => palette.danger.base.color,
        VmState::Stopped => palette.secondary.base.color,
    }
}

/// A container's state: running in the success colour, failed (a non-zero or unknown exit) in
/// the danger colour, created or exited cleanly muted.
pub fn container_state(theme: &Theme, state: &ContainerState) -> Color {
    let palette = theme.extended_palette();
    match state {
        ContainerState::Running { .. } => palette.success.base.color,
        ContainerState::Stopped {
            exit_code: Some(0), ..
        }
        | ContainerState::Created => palette.secondary.base.color,
        ContainerState::Stopped { .. } => palette.danger.base.color,
    }
}

/// Text in the danger colour: validation problems, refusals, overcommitment.
pub fn danger(theme: &Theme) -> text::Style {
    text::Style {
        color: Some(theme.palette().danger),
    }
}

/// The band across the window that says what failed.
pub fn banner(theme: &Theme) -> container::Style {
    let palette = theme.extended_palette();
    container::Style::default()
        .background(palette.danger.weak.color)
        .color(palette.danger.weak.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_take_their_colours_from_each_theme() {
        for theme in [Theme::Light, Theme::Dark] {
            let palette = theme.extended_palette();
            assert_eq!(
                vm_state(&theme, &VmState::Running),
                palette.success.base.color
            );
            assert_eq!(
                vm_state(&theme, &VmState::Crashed { reason: "x".into() }),
                palette.danger.base.color
            );
            assert_eq!(
                container_state(
                    &theme,
                    &ContainerState::Stopped {
                        exit_code: Some(1),
                        oom_killed: false
                    }
                ),
                palette.danger.base.color
            );
        }
        assert_ne!(
            vm_state(&Theme::Light, &VmState::Stopped),
            vm_state(&Theme::Dark, &VmState::Stopped),
            "dark mode colours them too"
        );
    }
}
