//! QEMU's ramfb as firmware sees it: the fw_cfg file `etc/ramfb`, into which SeaBIOS's VGA BIOS
//! for it (Debian's `vgabios-ramfb.bin`, handed to the firmware as the option ROM
//! `vgaroms/vgabios-ramfb.bin`) writes where in RAM it put its framebuffer and its geometry.
//! Read from QEMU's `hw/display/ramfb.c` and SeaBIOS's `vgasrc/ramfb.c`: 28 big-endian bytes,
//! `{u64 address, u32 fourcc, u32 flags, u32 width, u32 height, u32 stride}`.
//!
//! The screen then shows that framebuffer ([`berth_display::gpu::Gpu::show_boot_framebuffer`])
//! until the guest's virtio-gpu driver shows its own.

use berth_display::gpu::GuestFramebuffer;

/// The fw_cfg file the firmware writes its framebuffer's place into.
pub const RAMFB_FILE: &str = "etc/ramfb";
/// The fw_cfg file a VGA BIOS goes in for SeaBIOS to run it (its `vgaroms/` directory).
pub const VGA_BIOS_FILE: &str = "vgaroms/vgabios-ramfb.bin";
/// The VGA BIOS's file name, looked for next to the firmware (Debian's `seabios` package
/// ships both in /usr/share/seabios).
pub const VGA_BIOS_NAME: &str = "vgabios-ramfb.bin";
/// The configuration's size.
pub const CONFIG_LEN: usize = 28;

/// DRM's XRGB8888 ('XR24'): 32-bit pixels, blue in the lowest byte. The one format SeaBIOS's
/// VGA BIOS uses, and the one the screen takes.
const FOURCC_XRGB8888: u32 = u32::from_le_bytes(*b"XR24");

/// Why a configuration the guest wrote is not shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, displaydoc::Display)]
pub enum RamfbError {
    /// the firmware's framebuffer configuration is {0} bytes, not 28
    Length(usize),
    /// the firmware's framebuffer has the pixel format {0:#010x}; only XRGB8888 is shown
    Format(u32),
}

/// The framebuffer `config` (the file's bytes) describes; its geometry is checked where it is
/// shown.
pub fn parse(config: &[u8]) -> Result<GuestFramebuffer, RamfbError> {
    let config: &[u8; CONFIG_LEN] = config
        .try_into()
        .map_err(|_| RamfbError::Length(config.len()))?;
    let word = |at: usize| {
        u32::from_be_bytes([config[at], config[at + 1], config[at + 2], config[at + 3]])
    };
    let fourcc = word(8);
    if fourcc != FOURCC_XRGB8888 {
        return Err(RamfbError::Format(fourcc));
    }
    Ok(GuestFramebuffer {
        address: (u64::from(word(0)) << 32) | u64::from(word(4)),
        width: word(16),
        height: word(20),
        stride: word(24),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SeaBIOS's VGA BIOS writes for its 1024x768 framebuffer at `address`.
    fn seabios_config(address: u64, fourcc: u32) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&address.to_be_bytes());
        c.extend_from_slice(&fourcc.to_be_bytes());
        c.extend_from_slice(&0u32.to_be_bytes());
        c.extend_from_slice(&1024u32.to_be_bytes());
        c.extend_from_slice(&768u32.to_be_bytes());
        c.extend_from_slice(&4096u32.to_be_bytes());
        c
    }

    #[test]
    fn seabios_framebuffer_is_read() {
        // 'X' | 'R' << 8 | '2' << 16 | '4' << 24, as SeaBIOS's fourcc_code makes it.
        let fourcc = 0x3432_5258;
        assert_eq!(
            parse(&seabios_config(0x7f80_0000, fourcc)),
            Ok(GuestFramebuffer {
                address: 0x7f80_0000,
                width: 1024,
                height: 768,
                stride: 4096,
            })
        );
    }

    #[test]
    fn other_formats_and_lengths_are_refused() {
        let rgb565 = u32::from_le_bytes(*b"RG16");
        assert_eq!(
            parse(&seabios_config(0x1000, rgb565)),
            Err(RamfbError::Format(rgb565))
        );
        assert_eq!(parse(&[0; 27]), Err(RamfbError::Length(27)));
        assert_eq!(parse(&[]), Err(RamfbError::Length(0)));
    }
}
