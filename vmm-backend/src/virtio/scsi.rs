//! virtio-scsi (virtio 1.2 §5.6) with one target and one logical unit: a CD drive
//! ([`crate::devices::cdrom`]) holding the VM's ISO.
//!
//! Queues: control (0), event (1), one request queue (2). Commands complete before the
//! notification returns, so task management has nothing to abort and always reports the
//! function complete; the event queue's buffers are kept and never used (no hot-plug).
//! A request the driver gets wrong is answered in its response when the chain has room for
//! one; a chain without that room puts the device in DEVICE_NEEDS_RESET.

use std::io::{Read, Write};

use virtio_queue::DescriptorChain;

use super::{
    Activation, DeviceError, GuestMemory, VIRTIO_F_VERSION_1, VirtioDevice, answer_chains,
};
use crate::devices::cdrom::{self, Cdrom, Sense, Status};

/// Virtio device ID of a SCSI host.
pub const DEVICE_TYPE_SCSI: u32 = 8;
/// Each queue's maximum size.
pub const QUEUE_SIZE: u16 = 128;
const QUEUE_SIZES: [u16; 3] = [QUEUE_SIZE; 3];
const CONTROL_QUEUE: usize = 0;
const EVENT_QUEUE: usize = 1;
const REQUEST_QUEUE: usize = 2;

/// The CDB and sense sizes the device starts with (the specification's defaults), and the
/// largest a driver may set.
const DEFAULT_CDB_SIZE: u32 = 32;
const DEFAULT_SENSE_SIZE: u32 = 96;
const MAX_CDB_OR_SENSE_SIZE: u32 = 256;
/// A request's header before its CDB: LUN (8), tag (8), task attribute, priority, CRN.
const REQUEST_HEADER: usize = 19;
/// A response's header before its sense: sense length, residual, status qualifier, status,
/// response.
const RESPONSE_HEADER: usize = 12;
/// Bytes of one event (`struct virtio_scsi_event`).
const EVENT_INFO_SIZE: u32 = 16;
/// Configuration fields' offsets the driver may write.
const CONFIG_SENSE_SIZE: u64 = 20;
const CONFIG_CDB_SIZE: u64 = 24;

/// Response codes (virtio 1.2 §5.6.6.1).
const S_OK: u8 = 0;
const S_BAD_TARGET: u8 = 3;
const S_FAILURE: u8 = 9;
/// The control queue's request types and the task management answer.
const T_TMF: u32 = 0;
const T_AN_QUERY: u32 = 1;
const T_AN_SUBSCRIBE: u32 = 2;
const S_FUNCTION_COMPLETE: u8 = 0;
/// SCSI status bytes.
const STATUS_GOOD: u8 = 0x00;
const STATUS_CHECK_CONDITION: u8 = 0x02;
/// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED: a command to a LUN other than 0.
const NO_SUCH_LUN: Sense = Sense {
    key: 0x05,
    asc: 0x25,
    ascq: 0x00,
};

/// A virtio-scsi host with a CD drive as target 0, LUN 0.
pub struct Scsi {
    cdrom: Cdrom,
    cdb_size: u32,
    sense_size: u32,
    active: Option<Activation>,
}

impl Scsi {
    /// The host with `cdrom` as its one logical unit.
    pub fn new(cdrom: Cdrom) -> Self {
        Self {
            cdrom,
            cdb_size: DEFAULT_CDB_SIZE,
            sense_size: DEFAULT_SENSE_SIZE,
            active: None,
        }
    }

    fn config(&self) -> [u8; 36] {
        let max_sectors = u32::try_from(cdrom::MAX_READ / 512).unwrap_or(u32::MAX);
        let mut config = [0u8; 36];
        let words = [
            1, // num_queues: request queues
            u32::from(QUEUE_SIZE) - 2,
            max_sectors,
            u32::from(QUEUE_SIZE), // cmd_per_lun
            EVENT_INFO_SIZE,
            self.sense_size,
            self.cdb_size,
        ];
        for (slot, word) in config.chunks_exact_mut(4).zip(words) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
        // max_channel 0, max_target 0 (bytes 28..32), max_lun 0 (32..36).
        config
    }

    /// Answers one request: its response and data-in, written into the chain; returns the
    /// used length.
    fn handle_request(
        &self,
        mem: &GuestMemory,
        chain: DescriptorChain<&GuestMemory>,
    ) -> Result<u32, String> {
        let mut reader = chain.clone().reader(mem).map_err(|e| e.to_string())?;
        let mut writer = chain.writer(mem).map_err(|e| e.to_string())?;
        let sense_size = self.sense_size as usize;
        let response_len = RESPONSE_HEADER + sense_size;
        if writer.available_bytes() < response_len {
            return Err(format!(
                "a request's chain has {} device-writable bytes, its response needs {response_len}",
                writer.available_bytes()
            ));
        }
        let mut header = vec![0u8; REQUEST_HEADER + self.cdb_size as usize];
        let mut response = vec![0u8; response_len];
        let mut data = Vec::new();
        if reader.read_exact(&mut header).is_err() {
            response[11] = S_FAILURE;
        } else {
            let lun = &header[..8];
            let cdb = &header[REQUEST_HEADER..];
            if lun[0] != 1 || lun[1] != 0 {
                response[11] = S_BAD_TARGET;
            } else {
                let unit = u16::from_be_bytes([lun[2], lun[3]]) & 0x3fff;
                let limit = writer.available_bytes() - response_len;
                let status = if unit == 0 {
                    self.cdrom.execute(cdb, limit, &mut data)
                } else {
                    Status::CheckCondition(NO_SUCH_LUN)
                };
                let (status, sense) = match status {
                    Status::Good => (STATUS_GOOD, None),
                    Status::CheckCondition(sense) => (STATUS_CHECK_CONDITION, Some(sense)),
                };
                if let Some(sense) = sense {
                    let bytes = sense.fixed_format();
                    let len = bytes.len().min(sense_size);
                    response[0..4].copy_from_slice(&(len as u32).to_le_bytes());
                    response[RESPONSE_HEADER..RESPONSE_HEADER + len].copy_from_slice(&bytes[..len]);
                }
                let residual = u32::try_from(limit - data.len()).unwrap_or(u32::MAX);
                response[4..8].copy_from_slice(&residual.to_le_bytes());
                response[10] = status;
                response[11] = S_OK;
            }
        }
        writer.write_all(&response).map_err(|e| e.to_string())?;
        writer.write_all(&data).map_err(|e| e.to_string())?;
        u32::try_from(response.len() + data.len()).map_err(|e| e.to_string())
    }

    /// Answers one control request (task management or asynchronous notification).
    fn handle_control(
        mem: &GuestMemory,
        chain: DescriptorChain<&GuestMemory>,
    ) -> Result<u32, String> {
        let mut reader = chain.clone().reader(mem).map_err(|e| e.to_string())?;
        let mut writer = chain.writer(mem).map_err(|e| e.to_string())?;
        let mut kind = [0u8; 4];
        let answer: Vec<u8> = match reader
            .read_exact(&mut kind)
            .map(|()| u32::from_le_bytes(kind))
        {
            // Every command completed before its notification returned: nothing to abort.
            Ok(T_TMF) => vec![S_FUNCTION_COMPLETE],
            // No events are reported: event_actual 0.
            Ok(T_AN_QUERY | T_AN_SUBSCRIBE) => vec![0, 0, 0, 0, S_OK],
            _ => vec![S_FAILURE],
        };
        let len = answer.len().min(writer.available_bytes());
        if len == 0 {
            return Err("a control request's chain has no device-writable byte".into());
        }
        writer
            .write_all(&answer[..len])
            .map_err(|e| e.to_string())?;
        u32::try_from(len).map_err(|e| e.to_string())
    }
}

impl VirtioDevice for Scsi {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_SCSI
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config(), offset, data);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let Ok(value) = <[u8; 4]>::try_from(data).map(u32::from_le_bytes) else {
            return;
        };
        if value == 0 || value > MAX_CDB_OR_SENSE_SIZE {
            return;
        }
        match offset {
            CONFIG_SENSE_SIZE => self.sense_size = value,
            CONFIG_CDB_SIZE => self.cdb_size = value,
            _ => {}
        }
    }

    fn activate(&mut self, activation: Activation) -> Result<(), DeviceError> {
        self.active = Some(activation.with_queue_count(QUEUE_SIZES.len())?);
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.cdb_size = DEFAULT_CDB_SIZE;
        self.sense_size = DEFAULT_SENSE_SIZE;
    }

    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError> {
        let Some(mut active) = self.active.take() else {
            return Err(DeviceError::NoSuchQueue(index));
        };
        let result = match index {
            CONTROL_QUEUE | REQUEST_QUEUE => self.drain(&mut active, index),
            // Event buffers wait for events that never come.
            EVENT_QUEUE => Ok(()),
            _ => Err(DeviceError::NoSuchQueue(index)),
        };
        self.active = Some(active);
        result
    }
}

impl Scsi {
    fn drain(&self, active: &mut Activation, index: usize) -> Result<(), DeviceError> {
        let mem = active.mem.clone();
        let interrupt = active.interrupt.clone();
        answer_chains(
            &mut active.queues[index],
            &mem,
            interrupt.as_ref(),
            index,
            |chain| {
                if index == CONTROL_QUEUE {
                    Self::handle_control(&mem, chain)
                } else {
                    self.handle_request(&mem, chain)
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{Buf, CountingSink, guest_memory};
    use berth_display::testing::{Ring, read_bytes, write_bytes};
    use std::sync::Arc;

    const REQ: u64 = 0x20000;
    const RESP: u64 = 0x21000;
    const DATA: u64 = 0x22000;
    const RESPONSE_LEN: usize = RESPONSE_HEADER + DEFAULT_SENSE_SIZE as usize;

    struct Host {
        scsi: Scsi,
        mem: Arc<GuestMemory>,
        irq: Arc<CountingSink>,
        control: Ring,
        requests: Ring,
    }

    /// A host whose CD holds `blocks` blocks, each filled with its number; activated.
    fn host(blocks: u64) -> Host {
        let mut file = tempfile::tempfile().unwrap();
        for block in 0..blocks {
            file.write_all(&[block as u8; cdrom::BLOCK_SIZE as usize])
                .unwrap();
        }
        let mut scsi = Scsi::new(Cdrom::new(file).unwrap());
        let mem = guest_memory();
        let irq = Arc::new(CountingSink::default());
        let (control, events, requests) = (Ring::new(0), Ring::new(0x4000), Ring::new(0x8000));
        scsi.activate(Activation {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues: vec![control.queue(), events.queue(), requests.queue()],
            acked_features: VIRTIO_F_VERSION_1,
        })
        .unwrap();
        Host {
            scsi,
            mem,
            irq,
            control,
            requests,
        }
    }

    fn lun(target: u8, unit: u16) -> [u8; 8] {
        let unit = (0x4000 | unit).to_be_bytes();
        [1, target, unit[0], unit[1], 0, 0, 0, 0]
    }

    impl Host {
        /// Sends `cdb` to `lun` with `data_len` bytes of data-in room; returns the response
        /// and the used length.
        fn command(&mut self, lun: [u8; 8], cdb: &[u8], data_len: u32) -> (Vec<u8>, u32) {
            let mut request = vec![0u8; REQUEST_HEADER + DEFAULT_CDB_SIZE as usize];
            request[..8].copy_from_slice(&lun);
            request[REQUEST_HEADER..REQUEST_HEADER + cdb.len()].copy_from_slice(cdb);
            write_bytes(&self.mem, REQ, &request);
            let mut bufs = vec![
                Buf(REQ, request.len() as u32, false),
                Buf(RESP, RESPONSE_LEN as u32, true),
            ];
            if data_len > 0 {
                bufs.push(Buf(DATA, data_len, true));
            }
            self.requests.submit(&self.mem, &bufs);
            self.scsi.process_queue(REQUEST_QUEUE).unwrap();
            let used = self.requests.used_idx(&self.mem);
            let (_, len) = self.requests.used(&self.mem, used - 1);
            (read_bytes(&self.mem, RESP, RESPONSE_LEN), len)
        }
    }

    #[test]
    fn the_configuration_says_one_queue_and_the_default_sizes() {
        let host = host(4);
        let mut config = [0u8; 36];
        host.scsi.read_config(0, &mut config);
        let word = |at: usize| u32::from_le_bytes(config[at..at + 4].try_into().unwrap());
        assert_eq!(word(0), 1, "request queues");
        assert_eq!((word(20), word(24)), (96, 32), "sense and CDB sizes");
        assert_eq!(&config[28..36], &[0; 8], "one channel, target and LUN");
    }

    #[test]
    fn reads_reach_the_guest_with_a_good_status() {
        let mut host = host(8);
        let (response, used) = host.command(lun(0, 0), &[0x28, 0, 0, 0, 0, 5, 0, 0, 1, 0], 4096);
        assert_eq!((response[10], response[11]), (STATUS_GOOD, S_OK));
        assert_eq!(used as usize, RESPONSE_LEN + 2048);
        assert_eq!(
            &response[4..8],
            &2048u32.to_le_bytes(),
            "residual: half the room unused"
        );
        assert!(read_bytes(&host.mem, DATA, 2048).iter().all(|&b| b == 5));
        assert_eq!(host.irq.used.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_command_carries_its_sense() {
        let mut host = host(8);
        let (response, used) = host.command(lun(0, 0), &[0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0], 4096);
        assert_eq!((response[10], response[11]), (STATUS_CHECK_CONDITION, S_OK));
        assert_eq!(&response[0..4], &18u32.to_le_bytes(), "sense length");
        assert_eq!(
            (response[12], response[14], response[24]),
            (0x70, 0x05, 0x21)
        );
        assert_eq!(used as usize, RESPONSE_LEN);
    }

    #[test]
    fn other_targets_and_luns_are_not_there() {
        let mut host = host(8);
        let inquiry = [0x12, 0, 0, 0, 36, 0];
        assert_eq!(host.command(lun(1, 0), &inquiry, 64).0[11], S_BAD_TARGET);
        let (response, _) = host.command(lun(0, 3), &inquiry, 64);
        assert_eq!((response[10], response[24]), (STATUS_CHECK_CONDITION, 0x25));
        assert_eq!(host.command(lun(0, 0), &inquiry, 64).0[10], STATUS_GOOD);
        assert_eq!(read_bytes(&host.mem, DATA, 1), [5], "a CD drive");
    }

    #[test]
    fn a_chain_without_room_for_a_response_needs_a_reset() {
        let mut host = host(8);
        write_bytes(&host.mem, REQ, &[1, 0, 0x40, 0]);
        host.requests
            .submit(&host.mem, &[Buf(REQ, 51, false), Buf(RESP, 8, true)]);
        assert!(matches!(
            host.scsi.process_queue(REQUEST_QUEUE),
            Err(DeviceError::Protocol { queue: 2, .. })
        ));
        assert_eq!(host.requests.used_idx(&host.mem), 1, "the buffer came back");
    }

    #[test]
    fn a_short_request_fails_in_its_response() {
        let mut host = host(8);
        host.requests.submit(
            &host.mem,
            &[Buf(REQ, 10, false), Buf(RESP, RESPONSE_LEN as u32, true)],
        );
        host.scsi.process_queue(REQUEST_QUEUE).unwrap();
        assert_eq!(read_bytes(&host.mem, RESP + 11, 1), [S_FAILURE]);
    }

    #[test]
    fn task_management_completes_and_no_events_are_offered() {
        let mut host = host(8);
        write_bytes(&host.mem, REQ, &T_TMF.to_le_bytes());
        host.control
            .submit(&host.mem, &[Buf(REQ, 24, false), Buf(RESP, 1, true)]);
        write_bytes(&host.mem, REQ + 0x100, &T_AN_QUERY.to_le_bytes());
        host.control.submit(
            &host.mem,
            &[Buf(REQ + 0x100, 16, false), Buf(RESP + 0x100, 5, true)],
        );
        host.scsi.process_queue(CONTROL_QUEUE).unwrap();
        assert_eq!(host.control.used_idx(&host.mem), 2);
        assert_eq!(read_bytes(&host.mem, RESP, 1), [S_FUNCTION_COMPLETE]);
        assert_eq!(read_bytes(&host.mem, RESP + 0x100, 5), [0, 0, 0, 0, S_OK]);
        host.scsi.process_queue(EVENT_QUEUE).unwrap();
        assert!(host.scsi.process_queue(3).is_err());
    }

    #[test]
    fn the_driver_may_change_the_sizes_within_bounds() {
        let mut host = host(8);
        host.scsi
            .write_config(CONFIG_SENSE_SIZE, &32u32.to_le_bytes());
        host.scsi
            .write_config(CONFIG_CDB_SIZE, &(1u32 << 20).to_le_bytes());
        let mut sizes = [0u8; 8];
        host.scsi.read_config(20, &mut sizes);
        assert_eq!(sizes, [32, 0, 0, 0, 32, 0, 0, 0]);
        host.scsi.reset();
        host.scsi.read_config(20, &mut sizes);
        assert_eq!(sizes, [96, 0, 0, 0, 32, 0, 0, 0]);
    }
}
