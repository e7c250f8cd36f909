//! vhs-rust-backend SOCKET IMAGE: a vhost-user-blk back-end on rust-vmm's vhost-user-backend
//! framework, serving IMAGE (a raw file, read and written in place) to one front-end on SOCKET,
//! then exiting when it leaves. One queue; reads, writes, flushes and GET_ID. What the test
//! exercises is the framework: its handshake, memory mapping, vring handling and notifications,
//! which every rust-vmm vhost-device-* back-end shares.
use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind, Result};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{Descriptor, QueueOwnedT};
use vm_memory::{Address, Bytes, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

const SECTOR: u64 = 512;
// QEMU 10 and 11.1 set vhost-user-blk rings to 1024 entries; the framework refuses a SET_VRING_NUM above
// this and drops the connection
const QUEUE_SIZE: usize = 1024;
const ID: &[u8] = b"vhs-rust-backend";

struct Blk {
    image: File,
    sectors: u64,
    mem: Mutex<Option<GuestMemoryAtomic<GuestMemoryMmap>>>,
    event_idx: Mutex<bool>,
}

type Mem = vm_memory::GuestMemoryLoadGuard<GuestMemoryMmap>;

impl Blk {
    /// Serves one request (header, data descriptors, status byte); returns the bytes it wrote to
    /// guest memory, the status byte included.
    fn request(&self, mem: &Mem, descs: &[Descriptor]) -> Result<u32> {
        let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_string());
        if descs.len() < 2 {
            return Err(bad("a request needs a header and a status descriptor"));
        }
        let header = descs[0].addr();
        let kind: u32 = mem.read_obj(header).map_err(|_| bad("header out of memory"))?;
        let sector: u64 = mem
            .read_obj(header.unchecked_add(8))
            .map_err(|_| bad("header out of memory"))?;
        let status_desc = descs[descs.len() - 1];
        let data = &descs[1..descs.len() - 1];
        let mut written = 1u32;
        let mut offset = sector * SECTOR;
        let status = match kind {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
                let mut ok = true;
                for d in data {
                    let mut buf = vec![0u8; d.len() as usize];
                    if offset + buf.len() as u64 > self.sectors * SECTOR {
                        ok = false;
                        break;
                    }
                    let done = if kind == VIRTIO_BLK_T_IN {
                        self.image.read_exact_at(&mut buf, offset).is_ok() && mem.write_slice(&buf, d.addr()).is_ok()
                    } else {
                        mem.read_slice(&mut buf, d.addr()).is_ok() && self.image.write_all_at(&buf, offset).is_ok()
                    };
                    if !done {
                        ok = false;
                        break;
                    }
                    if kind == VIRTIO_BLK_T_IN {
                        written += d.len();
                    }
                    offset += d.len() as u64;
                }
                if ok {
                    VIRTIO_BLK_S_OK
                } else {
                    VIRTIO_BLK_S_IOERR
                }
            }
            VIRTIO_BLK_T_FLUSH => {
                if self.image.sync_data().is_ok() {
                    VIRTIO_BLK_S_OK
                } else {
                    VIRTIO_BLK_S_IOERR
                }
            }
            VIRTIO_BLK_T_GET_ID => match data.first() {
                Some(d) => {
                    let n = ID.len().min(d.len() as usize);
                    mem.write_slice(&ID[..n], d.addr()).map_err(|_| bad("GET_ID buffer out of memory"))?;
                    written += n as u32;
                    VIRTIO_BLK_S_OK
                }
                None => VIRTIO_BLK_S_IOERR,
            },
            _ => VIRTIO_BLK_S_UNSUPP,
        };
        mem.write_obj(status as u8, status_desc.addr()).map_err(|_| bad("status out of memory"))?;
        Ok(written)
    }

    /// Serves every request the driver made available; returns whether there were any.
    fn process(&self, vring: &VringRwLock) -> Result<bool> {
        let atomic = self.mem.lock().unwrap().clone().ok_or_else(|| Error::other("a kick before any memory table"))?;
        let mem = atomic.memory();
        let chains: Vec<_> = vring
            .get_mut()
            .get_queue_mut()
            .iter(atomic.memory())
            .map_err(|e| Error::other(format!("{e:?}")))?
            .collect();
        let any = !chains.is_empty();
        for chain in chains {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let len = match self.request(&mem, &descs) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("vhs-rust-backend: request at head {head}: {e}");
                    0
                }
            };
            vring.add_used(head, len).map_err(|e| Error::other(format!("{e:?}")))?;
        }
        if any {
            vring.signal_used_queue()?;
        }
        Ok(any)
    }
}

impl VhostUserBackend for Blk {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        1
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_BLK_F_FLUSH)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::REPLY_ACK
    }

    fn set_event_idx(&self, enabled: bool) {
        *self.event_idx.lock().unwrap() = enabled;
    }

    /// struct virtio_blk_config: the capacity in 512-byte sectors, the rest zero.
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut config = vec![0u8; 64];
        config[..8].copy_from_slice(&self.sectors.to_le_bytes());
        let start = (offset as usize).min(config.len());
        let end = (offset as usize + size as usize).min(config.len());
        let mut out = config[start..end].to_vec();
        out.resize(size as usize, 0);
        out
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> Result<()> {
        *self.mem.lock().unwrap() = Some(mem);
        Ok(())
    }

    fn handle_event(&self, device_event: u16, evset: EventSet, vrings: &[VringRwLock], _thread_id: usize) -> Result<()> {
        if evset != EventSet::IN || device_event != 0 {
            return Err(Error::other(format!("unexpected event {device_event} {evset:?}")));
        }
        let vring = &vrings[0];
        if !*self.event_idx.lock().unwrap() {
            self.process(vring)?;
            return Ok(());
        }
        // with EVENT_IDX: serve until the driver adds nothing between the last pass and re-enabling
        loop {
            vring.disable_notification().map_err(|e| Error::other(format!("{e:?}")))?;
            self.process(vring)?;
            if !vring.enable_notification().map_err(|e| Error::other(format!("{e:?}")))? {
                break;
            }
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: vhs-rust-backend SOCKET IMAGE");
        std::process::exit(2);
    }
    let image = OpenOptions::new().read(true).write(true).open(&args[2]).expect("open the image");
    let sectors = image.metadata().expect("stat the image").len() / SECTOR;
    let backend = Arc::new(Blk { image, sectors, mem: Mutex::new(None), event_idx: Mutex::new(false) });
    let mut daemon = VhostUserDaemon::new("vhs-rust-backend".to_string(), backend, GuestMemoryAtomic::new(GuestMemoryMmap::new()))
        .expect("create the daemon");
    eprintln!("vhs-rust-backend: {} sectors, listening on {}", sectors, args[1]);
    match daemon.serve(&args[1]) {
        Ok(()) => eprintln!("vhs-rust-backend: the front-end left"),
        Err(e) => {
            eprintln!("vhs-rust-backend: {e}");
            std::process::exit(1);
        }
    }
}
