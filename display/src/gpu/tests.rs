use std::sync::{Arc, Mutex};

use super::cmd::*;
use super::*;
use crate::framebuffer::FramebufferReader;
use crate::testing::{BACKING, Buf, Driver, REQUEST, RESPONSE, header, request};

fn gpu_with(width: u32, height: u32) -> (Gpu, Arc<Mutex<Vec<DisplayEvent>>>) {
    let mut gpu = Gpu::new(GpuConfig {
        width,
        height,
        ..GpuConfig::default()
    })
    .expect("gpu");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    gpu.set_event_sink(Box::new(move |e| sink.lock().expect("events").push(e)));
    (gpu, events)
}

fn gpu() -> (Gpu, Arc<Mutex<Vec<DisplayEvent>>>) {
    gpu_with(64, 48)
}

fn reader(gpu: &Gpu) -> FramebufferReader {
    FramebufferReader::open(gpu.framebuffer().fd().try_clone_to_owned().expect("dup"))
        .expect("reader")
}

fn create(id: u32, format: u32, w: u32, h: u32) -> Vec<u8> {
    request(RESOURCE_CREATE_2D, &[id, format, w, h])
}

/// ATTACH_BACKING for `id` with `(addr, len)` entries.
fn attach(id: u32, entries: &[(u64, u32)]) -> Vec<u8> {
    let mut r = request(RESOURCE_ATTACH_BACKING, &[id, entries.len() as u32]);
    for (addr, len) in entries {
        r.extend_from_slice(&addr.to_le_bytes());
        r.extend_from_slice(&len.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
    }
    r
}

fn transfer(id: u32, rect: [u32; 4], offset: u64) -> Vec<u8> {
    let mut r = request(TRANSFER_TO_HOST_2D, &rect);
    r.extend_from_slice(&offset.to_le_bytes());
    r.extend_from_slice(&id.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r
}

fn set_scanout(scanout: u32, id: u32, rect: [u32; 4]) -> Vec<u8> {
    let mut f = rect.to_vec();
    f.extend_from_slice(&[scanout, id]);
    request(SET_SCANOUT, &f)
}

fn flush(id: u32, rect: [u32; 4]) -> Vec<u8> {
    let mut f = rect.to_vec();
    f.extend_from_slice(&[id, 0]);
    request(RESOURCE_FLUSH, &f)
}

/// A distinct 4-byte pixel for every position.
fn pixel(x: u32, y: u32) -> [u8; 4] {
    [x as u8, y as u8, (x ^ y) as u8, 0x5a]
}

fn pattern(w: u32, h: u32) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| pixel(x, y)))
        .collect()
}

/// Resource 1 of 64x48 B8G8R8X8 with the pattern in two non-contiguous backing runs.
fn drawn_resource(d: &mut Driver, gpu: &mut Gpu) {
    let bytes = pattern(64, 48);
    let half = bytes.len() / 2;
    d.write_bytes(BACKING, &bytes[..half]);
    d.write_bytes(BACKING + 0x10_0000, &bytes[half..]);
    assert_eq!(d.command(gpu, &create(1, 2, 64, 48)), RESP_OK_NODATA);
    let entries = [
        (BACKING, half as u32),
        (BACKING + 0x10_0000, (bytes.len() - half) as u32),
    ];
    assert_eq!(d.command(gpu, &attach(1, &entries)), RESP_OK_NODATA);
}

#[test]
fn get_display_info_reports_the_configured_mode() {
    let (mut gpu, _) = gpu_with(1280, 800);
    let mut d = Driver::new();
    let (len, resp) = d.control(&mut gpu, &header(GET_DISPLAY_INFO), 24 + 16 * 24);
    assert_eq!(len, 24 + 16 * 24);
    assert_eq!(le32(&resp, 0), RESP_OK_DISPLAY_INFO);
    assert_eq!(rect_at(&resp, 24), Rect::new(0, 0, 1280, 800));
    assert_eq!(le32(&resp, 40), 1, "enabled");
    assert_eq!(le32(&resp, 48 + 16), 0, "scanout 1 disabled");
}

#[test]
fn default_mode_is_1280x800() {
    let c = GpuConfig::default();
    assert_eq!((c.width, c.height), (1280, 800));
}

#[test]
fn get_edid_returns_a_valid_block_for_the_mode() {
    let (mut gpu, _) = gpu_with(1024, 768);
    let mut d = Driver::new();
    let (len, resp) = d.control(&mut gpu, &request(GET_EDID, &[0, 0]), 24 + 8 + 1024);
    assert_eq!(len, 24 + 8 + 1024);
    assert_eq!(le32(&resp, 0), RESP_OK_EDID);
    assert_eq!(le32(&resp, 24), 128);
    let e = &resp[32..160];
    assert_eq!(&e[..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    assert_eq!(e.iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0, "checksum");
    assert_eq!((e[18], e[19]), (1, 4));
    let dtd = &e[54..72];
    let w = u32::from(dtd[2]) | (u32::from(dtd[4] >> 4) << 8);
    let h = u32::from(dtd[5]) | (u32::from(dtd[7] >> 4) << 8);
    assert_eq!((w, h), (1024, 768));
    let clock = u32::from(u16::from_le_bytes([dtd[0], dtd[1]]));
    let hblank = u32::from(dtd[3]) | (u32::from(dtd[4] & 0xf) << 8);
    let vblank = u32::from(dtd[6]) | (u32::from(dtd[7] & 0xf) << 8);
    let refresh = clock as f64 * 10_000.0 / f64::from((w + hblank) * (h + vblank));
    assert!((59.5..60.5).contains(&refresh), "{refresh} Hz");
    assert!(e[90..108].windows(5).any(|n| n == b"Berth"));
    assert_eq!(e[126], 0, "no extensions");
    // Every mode the device accepts gives a block with a good checksum.
    for (w, h) in [(1, 1), (64, 48), (4095, 4095), (1920, 1080)] {
        let e = edid(w, h);
        assert_eq!(e.iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
    }
    assert_eq!(
        d.command(&mut gpu, &request(GET_EDID, &[1, 0])),
        RESP_ERR_INVALID_SCANOUT_ID
    );
    assert_eq!(
        d.command(&mut gpu, &request(GET_EDID, &[0])),
        RESP_ERR_UNSPEC,
        "short"
    );
}

#[test]
fn draw_flush_reaches_the_framebuffer_pixel_for_pixel() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    let mut r = reader(&gpu);
    drawn_resource(&mut d, &mut gpu);
    assert_eq!(
        d.command(&mut gpu, &transfer(1, [0, 0, 64, 48], 0)),
        RESP_OK_NODATA
    );
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 64, 48])),
        RESP_OK_NODATA
    );
    assert_eq!(
        d.command(&mut gpu, &flush(1, [0, 0, 64, 48])),
        RESP_OK_NODATA
    );
    let f = r.read_frame().expect("frame");
    assert_eq!((f.width, f.height, f.format), (64, 48, 2));
    assert_eq!(f.pixels, pattern(64, 48));
    let events = events.lock().expect("events").clone();
    assert!(matches!(
        events[0],
        DisplayEvent::Mode {
            width: 64,
            height: 48,
            format: 2,
            ..
        }
    ));
    assert_eq!(
        events[1],
        DisplayEvent::Damage {
            rect: Rect::new(0, 0, 64, 48),
            frame: f.frame
        }
    );
}

#[test]
fn partial_transfer_and_flush_touch_only_their_rectangle() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    let mut r = reader(&gpu);
    drawn_resource(&mut d, &mut gpu);
    d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 64, 48]));
    // Rectangle 10,20 5x3: the backing offset is where that rectangle starts (Linux's rule).
    let offset = 20 * 64 * 4 + 10 * 4;
    assert_eq!(
        d.command(&mut gpu, &transfer(1, [10, 20, 5, 3], offset)),
        RESP_OK_NODATA
    );
    assert_eq!(
        d.command(&mut gpu, &flush(1, [0, 0, 64, 48])),
        RESP_OK_NODATA
    );
    let f = r.read_frame().expect("frame");
    for y in 0..48 {
        for x in 0..64 {
            let i = ((y * 64 + x) * 4) as usize;
            let inside = (10..15).contains(&x) && (20..23).contains(&y);
            let want = if inside { pixel(x, y) } else { [0; 4] };
            assert_eq!(f.pixels[i..i + 4], want, "pixel {x},{y}");
        }
    }
    // A flush of part of the resource reports that rectangle as damage.
    events.lock().expect("events").clear();
    d.command(&mut gpu, &flush(1, [8, 4, 16, 2]));
    assert!(matches!(
        events.lock().expect("events")[0],
        DisplayEvent::Damage {
            rect: Rect {
                x: 8,
                y: 4,
                width: 16,
                height: 2
            },
            ..
        }
    ));
}

#[test]
fn scanout_of_a_sub_rectangle_is_offset_into_the_resource() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    let mut r = reader(&gpu);
    drawn_resource(&mut d, &mut gpu);
    d.command(&mut gpu, &transfer(1, [0, 0, 64, 48], 0));
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 1, [16, 8, 32, 16])),
        RESP_OK_NODATA
    );
    events.lock().expect("events").clear();
    // A flush partly outside the scanout is clipped to it.
    d.command(&mut gpu, &flush(1, [0, 0, 20, 10]));
    let f = r.read_frame().expect("frame");
    assert_eq!((f.width, f.height), (32, 16));
    assert_eq!(f.pixels[..4], pixel(16, 8));
    assert_eq!(f.pixels[4..8], pixel(17, 8));
    assert_eq!(f.pixels[8..12], pixel(18, 8));
    assert_eq!(f.pixels[12..16], pixel(19, 8));
    assert_eq!(f.pixels[16..20], [0; 4], "outside the flushed rectangle");
    assert!(matches!(
        events.lock().expect("events")[0],
        DisplayEvent::Damage {
            rect: Rect {
                x: 0,
                y: 0,
                width: 4,
                height: 2
            },
            ..
        }
    ));
    // A flush wholly outside the scanout does nothing and is fine.
    events.lock().expect("events").clear();
    assert_eq!(d.command(&mut gpu, &flush(1, [0, 0, 4, 4])), RESP_OK_NODATA);
    assert!(events.lock().expect("events").is_empty());
}

#[test]
fn page_flips_announce_no_new_mode() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    drawn_resource(&mut d, &mut gpu);
    assert_eq!(d.command(&mut gpu, &create(2, 2, 64, 48)), RESP_OK_NODATA);
    d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 64, 48]));
    d.command(&mut gpu, &set_scanout(0, 2, [0, 0, 64, 48]));
    d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 64, 48]));
    let modes = |events: &[DisplayEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, DisplayEvent::Mode { .. }))
            .count()
    };
    assert_eq!(modes(&events.lock().expect("events")), 1);
    // A different size is a new mode with a new generation.
    d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 32, 16]));
    let events = events.lock().expect("events");
    assert_eq!(modes(&events), 2);
    assert!(matches!(
        events.last(),
        Some(DisplayEvent::Mode {
            width: 32,
            height: 16,
            generation: 1,
            ..
        })
    ));
}

#[test]
fn create_2d_errors() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    assert_eq!(
        d.command(&mut gpu, &create(0, 2, 8, 8)),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(d.command(&mut gpu, &create(5, 2, 8, 8)), RESP_OK_NODATA);
    assert_eq!(
        d.command(&mut gpu, &create(5, 2, 8, 8)),
        RESP_ERR_INVALID_RESOURCE_ID,
        "duplicate id"
    );
    assert_eq!(
        d.command(&mut gpu, &create(6, 99, 8, 8)),
        RESP_ERR_INVALID_PARAMETER,
        "unsupported format"
    );
    assert_eq!(
        d.command(&mut gpu, &create(6, 2, 0, 8)),
        RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        d.command(&mut gpu, &create(6, 2, 8, 0x1_0000)),
        RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        d.command(&mut gpu, &request(RESOURCE_CREATE_2D, &[6, 2, 8])),
        RESP_ERR_UNSPEC,
        "short"
    );
    for format in [1, 2, 3, 4, 67, 68, 121, 134] {
        assert_eq!(
            d.command(&mut gpu, &create(100 + format, format, 4, 4)),
            RESP_OK_NODATA
        );
    }
}

#[test]
fn resource_memory_is_capped_and_returned() {
    let mut gpu = Gpu::new(GpuConfig {
        width: 64,
        height: 48,
        max_resource_bytes: 1 << 20,
    })
    .expect("gpu");
    let mut d = Driver::new();
    // 512x512x4 = 1 MiB: the whole budget.
    assert_eq!(d.command(&mut gpu, &create(1, 2, 512, 512)), RESP_OK_NODATA);
    assert_eq!(
        d.command(&mut gpu, &create(2, 2, 1, 1)),
        RESP_ERR_OUT_OF_MEMORY
    );
    assert_eq!(
        d.command(&mut gpu, &attach(1, &[(BACKING, 4096)])),
        RESP_ERR_OUT_OF_MEMORY,
        "backing entries count against the cap too"
    );
    assert_eq!(
        d.command(&mut gpu, &request(RESOURCE_UNREF, &[1, 0])),
        RESP_OK_NODATA
    );
    assert_eq!(d.command(&mut gpu, &create(2, 2, 512, 256)), RESP_OK_NODATA);
    assert_eq!(d.command(&mut gpu, &create(3, 2, 512, 255)), RESP_OK_NODATA);
    assert_eq!(
        d.command(&mut gpu, &create(4, 2, 512, 2)),
        RESP_ERR_OUT_OF_MEMORY
    );
}

#[test]
fn unref_errors_and_unref_of_the_shown_resource_blanks_the_display() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    assert_eq!(
        d.command(&mut gpu, &request(RESOURCE_UNREF, &[7, 0])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        d.command(&mut gpu, &header(RESOURCE_UNREF)),
        RESP_ERR_UNSPEC
    );
    drawn_resource(&mut d, &mut gpu);
    d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 64, 48]));
    assert_eq!(
        d.command(&mut gpu, &request(RESOURCE_UNREF, &[1, 0])),
        RESP_OK_NODATA
    );
    assert_eq!(
        events.lock().expect("events").last(),
        Some(&DisplayEvent::Disabled)
    );
    assert_eq!(
        d.command(&mut gpu, &flush(1, [0, 0, 1, 1])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn set_scanout_errors() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    drawn_resource(&mut d, &mut gpu);
    assert_eq!(
        d.command(&mut gpu, &set_scanout(1, 1, [0, 0, 64, 48])),
        RESP_ERR_INVALID_SCANOUT_ID
    );
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 9, [0, 0, 64, 48])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 1, [1, 0, 64, 48])),
        RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 1, [u32::MAX, 0, 2, 2])),
        RESP_ERR_INVALID_PARAMETER,
        "overflowing rectangle"
    );
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 0, 48])),
        RESP_ERR_INVALID_PARAMETER,
        "empty"
    );
    assert_eq!(
        d.command(&mut gpu, &request(SET_SCANOUT, &[0, 0, 64, 48, 0])),
        RESP_ERR_UNSPEC,
        "short"
    );
    assert!(events.lock().expect("events").is_empty());
    // Resource 0 disables the scanout.
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 0, [0, 0, 0, 0])),
        RESP_OK_NODATA
    );
    assert_eq!(
        events.lock().expect("events").last(),
        Some(&DisplayEvent::Disabled)
    );
}

#[test]
fn resource_flush_errors() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    drawn_resource(&mut d, &mut gpu);
    assert_eq!(
        d.command(&mut gpu, &flush(2, [0, 0, 1, 1])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        d.command(&mut gpu, &flush(1, [60, 0, 5, 1])),
        RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        d.command(&mut gpu, &request(RESOURCE_FLUSH, &[0, 0, 1, 1])),
        RESP_ERR_UNSPEC
    );
    // Flushing a resource that is not on a scanout is fine and shows nothing.
    assert_eq!(
        d.command(&mut gpu, &flush(1, [0, 0, 64, 48])),
        RESP_OK_NODATA
    );
    assert!(events.lock().expect("events").is_empty());
}

#[test]
fn transfer_errors() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    assert_eq!(d.command(&mut gpu, &create(2, 2, 8, 8)), RESP_OK_NODATA);
    assert_eq!(
        d.command(&mut gpu, &transfer(2, [0, 0, 8, 8], 0)),
        RESP_ERR_UNSPEC,
        "no backing"
    );
    assert_eq!(
        d.command(&mut gpu, &transfer(3, [0, 0, 8, 8], 0)),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        d.command(&mut gpu, &attach(2, &[(BACKING, 8 * 8 * 4)])),
        RESP_OK_NODATA
    );
    assert_eq!(
        d.command(&mut gpu, &transfer(2, [0, 0, 9, 8], 0)),
        RESP_ERR_INVALID_PARAMETER,
        "rectangle outside the resource"
    );
    assert_eq!(
        d.command(&mut gpu, &transfer(2, [0, 0, 8, 8], 4)),
        RESP_ERR_INVALID_PARAMETER,
        "reads past the backing"
    );
    assert_eq!(
        d.command(&mut gpu, &transfer(2, [0, 0, 8, 8], u64::MAX)),
        RESP_ERR_INVALID_PARAMETER,
        "offset overflows"
    );
    assert_eq!(
        d.command(&mut gpu, &request(TRANSFER_TO_HOST_2D, &[0, 0, 8, 8, 0])),
        RESP_ERR_UNSPEC,
        "short"
    );
    assert_eq!(
        d.command(&mut gpu, &transfer(2, [0, 0, 8, 8], 0)),
        RESP_OK_NODATA
    );
    assert_eq!(
        d.command(&mut gpu, &transfer(2, [3, 3, 0, 0], 0)),
        RESP_OK_NODATA,
        "empty"
    );
}

#[test]
fn attach_backing_errors() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    assert_eq!(d.command(&mut gpu, &create(1, 2, 8, 8)), RESP_OK_NODATA);
    assert_eq!(
        d.command(&mut gpu, &attach(2, &[(BACKING, 256)])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        d.command(&mut gpu, &attach(1, &[])),
        RESP_ERR_INVALID_PARAMETER,
        "no entries"
    );
    let too_many = request(RESOURCE_ATTACH_BACKING, &[1, MAX_BACKING_ENTRIES + 1]);
    assert_eq!(
        d.command(&mut gpu, &too_many),
        RESP_ERR_INVALID_PARAMETER,
        "too many entries"
    );
    let mut short = attach(1, &[(BACKING, 256), (BACKING + 4096, 256)]);
    short.truncate(short.len() - 16);
    assert_eq!(d.command(&mut gpu, &short), RESP_ERR_UNSPEC, "entries cut");
    assert_eq!(
        d.command(
            &mut gpu,
            &attach(1, &[(crate::testing::MEM_SIZE as u64 - 16, 256)])
        ),
        RESP_ERR_UNSPEC,
        "runs past the end of guest RAM"
    );
    assert_eq!(
        d.command(&mut gpu, &attach(1, &[(u64::MAX - 8, 256)])),
        RESP_ERR_UNSPEC,
        "wraps around"
    );
    assert_eq!(
        d.command(&mut gpu, &attach(1, &[(BACKING, 256)])),
        RESP_OK_NODATA
    );
    assert_eq!(
        d.command(&mut gpu, &attach(1, &[(BACKING, 256)])),
        RESP_ERR_UNSPEC,
        "already attached"
    );
}

#[test]
fn detach_backing_and_its_errors() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    assert_eq!(d.command(&mut gpu, &create(1, 2, 8, 8)), RESP_OK_NODATA);
    let detach = request(RESOURCE_DETACH_BACKING, &[1, 0]);
    assert_eq!(
        d.command(&mut gpu, &detach),
        RESP_ERR_UNSPEC,
        "none attached"
    );
    assert_eq!(
        d.command(&mut gpu, &request(RESOURCE_DETACH_BACKING, &[4, 0])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    d.command(&mut gpu, &attach(1, &[(BACKING, 256)]));
    assert_eq!(d.command(&mut gpu, &detach), RESP_OK_NODATA);
    assert_eq!(
        d.command(&mut gpu, &transfer(1, [0, 0, 8, 8], 0)),
        RESP_ERR_UNSPEC
    );
    assert_eq!(
        d.command(&mut gpu, &attach(1, &[(BACKING, 256)])),
        RESP_OK_NODATA,
        "can attach again"
    );
}

#[test]
fn malformed_requests_get_errors() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    let (len, resp) = d.control(&mut gpu, &[1, 1, 0, 0], 24);
    assert_eq!(
        (len, le32(&resp, 0)),
        (24, RESP_ERR_UNSPEC),
        "shorter than a header"
    );
    assert_eq!(
        d.command(&mut gpu, &header(0x0777)),
        RESP_ERR_UNSPEC,
        "unknown"
    );
    assert_eq!(
        d.command(&mut gpu, &header(GET_CAPSET_INFO)),
        RESP_ERR_INVALID_PARAMETER
    );
    // A request longer than any command is refused without being copied.
    d.submit(
        0,
        &[
            Buf(REQUEST, MAX_REQUEST_LEN as u32 + 1, false),
            Buf(RESPONSE, 24, true),
        ],
    );
    d.process(&mut gpu, 0);
    assert_eq!(d.used(0, 2).1, 24);
    assert_eq!(le32(&d.read_bytes(RESPONSE, 4), 0), RESP_ERR_UNSPEC);
}

#[test]
fn responses_that_do_not_fit_are_not_written() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    let (len, resp) = d.control(&mut gpu, &header(GET_DISPLAY_INFO), 100);
    assert_eq!(len, 0);
    assert_eq!(resp, vec![0xaa; 100]);
    // No response buffer at all, and buffers outside guest RAM.
    d.write_bytes(REQUEST, &header(GET_DISPLAY_INFO));
    d.submit(0, &[Buf(REQUEST, 24, false)]);
    d.submit(
        0,
        &[Buf(REQUEST, 24, false), Buf(0xffff_0000_0000, 24, true)],
    );
    d.submit(
        0,
        &[Buf(0xffff_0000_0000, 24, false), Buf(RESPONSE, 24, true)],
    );
    d.process(&mut gpu, 0);
    assert_eq!(d.used_idx(0), 4);
    assert_eq!(d.used(0, 1).1, 0);
    assert_eq!(d.used(0, 2).1, 0);
    assert_eq!(d.used(0, 3).1, 24, "unreadable request gets an error");
}

#[test]
fn fences_are_echoed() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    let mut req = header(GET_DISPLAY_INFO);
    req[4] = FLAG_FENCE as u8;
    req[8..16].copy_from_slice(&0x1234_5678_9abc_u64.to_le_bytes());
    req[16] = 3;
    let (_, resp) = d.control(&mut gpu, &req, 24 + 384);
    assert_eq!(le32(&resp, 4), FLAG_FENCE);
    assert_eq!(le64(&resp, 8), 0x1234_5678_9abc);
    assert_eq!(le32(&resp, 16), 3);
}

#[test]
fn config_space_and_display_events() {
    let (mut gpu, _) = gpu();
    let c = gpu.config_space();
    assert_eq!((le32(&c, 0), le32(&c, 8), le32(&c, 12)), (0, 1, 0));
    assert!(!gpu.set_mode(64, 48).expect("same mode"));
    assert!(gpu.set_mode(800, 600).expect("mode"));
    assert_eq!(le32(&gpu.config_space(), 0), VIRTIO_GPU_EVENT_DISPLAY);
    let mut d = Driver::new();
    let (_, resp) = d.control(&mut gpu, &header(GET_DISPLAY_INFO), 24 + 384);
    assert_eq!(rect_at(&resp, 24), Rect::new(0, 0, 800, 600));
    gpu.write_config(0, &1u32.to_le_bytes());
    assert_eq!(le32(&gpu.config_space(), 0), 1, "events_read is read-only");
    gpu.write_config(4, &1u32.to_le_bytes());
    assert_eq!(le32(&gpu.config_space(), 0), 0);
    assert!(gpu.set_mode(0, 600).is_err());
    assert!(
        Gpu::new(GpuConfig {
            width: 5000,
            ..GpuConfig::default()
        })
        .is_err()
    );
}

#[test]
fn cursor_queue_updates_and_moves_the_cursor() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    // A 64x64 B8G8R8A8 cursor, every pixel blue-ish with alpha 0x80.
    assert_eq!(d.command(&mut gpu, &create(9, 1, 64, 64)), RESP_OK_NODATA);
    let image: Vec<u8> = [0xff, 0x10, 0x20, 0x80].repeat(64 * 64);
    d.write_bytes(BACKING, &image);
    d.command(&mut gpu, &attach(9, &[(BACKING, image.len() as u32)]));
    d.command(&mut gpu, &transfer(9, [0, 0, 64, 64], 0));
    let cursor = |kind: u32, x: u32, y: u32, id: u32| request(kind, &[0, x, y, 0, id, 3, 4, 0]);
    let send = |d: &mut Driver, gpu: &mut Gpu, req: Vec<u8>| {
        d.write_bytes(0x70000, &req);
        d.submit(1, &[Buf(0x70000, req.len() as u32, false)]);
        assert!(d.process(gpu, 1));
    };
    send(&mut d, &mut gpu, cursor(UPDATE_CURSOR, 10, 20, 9));
    send(&mut d, &mut gpu, cursor(MOVE_CURSOR, 11, 21, 9));
    send(&mut d, &mut gpu, cursor(UPDATE_CURSOR, 0, 0, 0));
    // Ignored: unknown resource, not 64x64, bad scanout, short, unknown type.
    send(&mut d, &mut gpu, cursor(UPDATE_CURSOR, 0, 0, 77));
    d.command(&mut gpu, &create(10, 1, 32, 32));
    send(&mut d, &mut gpu, cursor(UPDATE_CURSOR, 0, 0, 10));
    send(
        &mut d,
        &mut gpu,
        request(MOVE_CURSOR, &[5, 1, 1, 0, 0, 0, 0, 0]),
    );
    send(&mut d, &mut gpu, request(MOVE_CURSOR, &[0, 1, 1]));
    send(&mut d, &mut gpu, cursor(0x399, 1, 1, 9));
    assert_eq!(d.used_idx(1), 8);
    assert_eq!(d.used(1, 0).1, 0, "the cursor queue has no responses");
    let events = events.lock().expect("events").clone();
    assert_eq!(events.len(), 3, "{events:?}");
    let DisplayEvent::Cursor {
        image: Some(rgba),
        hot_x: 3,
        hot_y: 4,
        x: 10,
        y: 20,
    } = &events[0]
    else {
        panic!("{:?}", events[0]);
    };
    assert_eq!(rgba.len(), 64 * 64 * 4);
    assert_eq!(rgba[..4], [0x20, 0x10, 0xff, 0x80], "BGRA became RGBA");
    assert_eq!(events[1], DisplayEvent::CursorMove { x: 11, y: 21 });
    assert!(matches!(
        events[2],
        DisplayEvent::Cursor { image: None, .. }
    ));
}

#[test]
fn reset_drops_every_resource() {
    let (mut gpu, _) = gpu();
    let mut d = Driver::new();
    drawn_resource(&mut d, &mut gpu);
    gpu.reset();
    assert_eq!(
        d.command(&mut gpu, &transfer(1, [0, 0, 1, 1], 0)),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(d.command(&mut gpu, &create(1, 2, 64, 48)), RESP_OK_NODATA);
}

#[test]
fn formats_convert_to_rgba() {
    let px = [1u8, 2, 3, 4];
    let conv = |f: Format| {
        let mut p = px;
        f.to_rgba_in_place(&mut p);
        p
    };
    assert_eq!(conv(Format::B8G8R8A8), [3, 2, 1, 4]);
    assert_eq!(conv(Format::B8G8R8X8), [3, 2, 1, 0xff]);
    assert_eq!(conv(Format::A8R8G8B8), [2, 3, 4, 1]);
    assert_eq!(conv(Format::X8R8G8B8), [2, 3, 4, 0xff]);
    assert_eq!(conv(Format::R8G8B8A8), [1, 2, 3, 4]);
    assert_eq!(conv(Format::X8B8G8R8), [4, 3, 2, 0xff]);
    assert_eq!(conv(Format::A8B8G8R8), [4, 3, 2, 1]);
    assert_eq!(conv(Format::R8G8B8X8), [1, 2, 3, 0xff]);
    assert_eq!(Format::from_code(5), None);
}

/// A 16x8 firmware framebuffer at BACKING with rows of 80 bytes (16 pixels and 16 of padding).
fn firmware_framebuffer() -> GuestFramebuffer {
    GuestFramebuffer {
        address: BACKING,
        width: 16,
        height: 8,
        stride: 80,
    }
}

/// Writes `pattern(16, 8)` into the firmware framebuffer's rows, with `fill` in the padding.
fn draw_firmware_framebuffer(d: &Driver, fill: u8) {
    let pixels = pattern(16, 8);
    for (y, row) in pixels.chunks(64).enumerate() {
        let mut padded = row.to_vec();
        padded.extend_from_slice(&[fill; 16]);
        d.write_bytes(BACKING + y as u64 * 80, &padded);
    }
}

#[test]
fn the_firmware_framebuffer_is_shown_until_the_driver_shows_its_own() {
    let (mut gpu, events) = gpu();
    let mut d = Driver::new();
    let mut r = reader(&gpu);
    assert_eq!(gpu.refresh_boot_screen(&d.mem), BootScreenState::Waiting);
    draw_firmware_framebuffer(&d, 0xee);
    gpu.show_boot_framebuffer(firmware_framebuffer())
        .expect("a good framebuffer");
    assert_eq!(
        gpu.refresh_boot_screen(&d.mem),
        BootScreenState::Showing { changed: true }
    );
    // Its mode, then all of it, without the rows' padding.
    let f = r.read_frame().expect("frame");
    assert_eq!((f.width, f.height, f.format), (16, 8, 2));
    assert_eq!(f.pixels, pattern(16, 8));
    {
        let events = events.lock().expect("events");
        assert!(matches!(
            events[0],
            DisplayEvent::Mode {
                width: 16,
                height: 8,
                format: 2,
                ..
            }
        ));
        assert_eq!(
            events[1],
            DisplayEvent::Damage {
                rect: Rect::new(0, 0, 16, 8),
                frame: f.frame
            }
        );
    }
    // Nothing changed: nothing published; the padding is not part of the picture.
    draw_firmware_framebuffer(&d, 0x11);
    assert_eq!(
        gpu.refresh_boot_screen(&d.mem),
        BootScreenState::Showing { changed: false }
    );
    assert_eq!(events.lock().expect("events").len(), 2);
    // Rows 3 and 5 change: rows 3 to 5 are published.
    d.write_bytes(BACKING + 3 * 80 + 4, &[1, 2, 3, 4]);
    d.write_bytes(BACKING + 5 * 80, &[9, 9, 9, 9]);
    assert_eq!(
        gpu.refresh_boot_screen(&d.mem),
        BootScreenState::Showing { changed: true }
    );
    let f = r.read_frame().expect("frame");
    assert_eq!(
        events.lock().expect("events")[2],
        DisplayEvent::Damage {
            rect: Rect::new(0, 3, 16, 3),
            frame: f.frame
        }
    );
    assert_eq!(&f.pixels[3 * 64 + 4..3 * 64 + 8], &[1, 2, 3, 4]);
    assert_eq!(&f.pixels[5 * 64..5 * 64 + 4], &[9, 9, 9, 9]);
    // The driver shows a scanout: the firmware's framebuffer is over, and stays so.
    drawn_resource(&mut d, &mut gpu);
    assert_eq!(
        d.command(&mut gpu, &set_scanout(0, 1, [0, 0, 64, 48])),
        RESP_OK_NODATA
    );
    assert_eq!(gpu.refresh_boot_screen(&d.mem), BootScreenState::Over);
    assert_eq!(
        r.read_frame().expect("frame").width,
        64,
        "the driver's mode"
    );
    gpu.show_boot_framebuffer(firmware_framebuffer())
        .expect("a good framebuffer");
    assert_eq!(gpu.refresh_boot_screen(&d.mem), BootScreenState::Over);
}

#[test]
fn a_firmware_framebuffer_the_guest_got_wrong_is_refused_or_ends() {
    let (mut gpu, _) = gpu();
    let d = Driver::new();
    let bad = [
        GuestFramebuffer {
            width: 0,
            ..firmware_framebuffer()
        },
        GuestFramebuffer {
            height: 5000,
            ..firmware_framebuffer()
        },
        GuestFramebuffer {
            stride: 63,
            ..firmware_framebuffer()
        },
        GuestFramebuffer {
            address: u64::MAX - 100,
            ..firmware_framebuffer()
        },
    ];
    for framebuffer in bad {
        assert!(
            gpu.show_boot_framebuffer(framebuffer).is_err(),
            "{framebuffer:?}"
        );
    }
    assert_eq!(gpu.refresh_boot_screen(&d.mem), BootScreenState::Waiting);
    // Past the end of guest RAM: nothing to show, ever.
    gpu.show_boot_framebuffer(GuestFramebuffer {
        address: 1 << 40,
        ..firmware_framebuffer()
    })
    .expect("a good geometry");
    assert_eq!(gpu.refresh_boot_screen(&d.mem), BootScreenState::Over);
}
