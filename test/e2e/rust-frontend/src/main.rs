//! vhs-rust-frontend SOCKET PACKETS: drives a vhost-user net backend (a DPDK testpmd in io
//! forwarding, which sends every packet back out of the port it came from) with the rust-vmm
//! `vhost` crate's `Frontend`: the full handshake (owner, features, protocol features, memory
//! table, two vrings), then PACKETS Ethernet frames on the tx queue, and checks that the backend
//! used them all and that they came back, byte for byte, in the buffers posted on the rx queue.
//! Prints "RUST-FRONTEND: ..." lines; exits 0 when every frame came back.
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::ptr;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 16 << 20;
const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
/// virtio_net_hdr with VIRTIO_F_VERSION_1: 12 bytes
const NET_HDR: usize = 12;
const FRAME: usize = 64;
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
const VRING_DESC_F_WRITE: u16 = 2;

/// Guest memory: one shared memfd, guest-physical 0 .. MEM_SIZE, mapped here at `base`.
struct Memory {
    file: File,
    base: *mut u8,
}

impl Memory {
    fn new() -> Memory {
        // SAFETY: plain syscalls; the fd is checked before use and owned by File from here.
        unsafe {
            let fd = libc::memfd_create(b"vhs-rust-frontend\0".as_ptr() as *const libc::c_char, 0);
            assert!(fd >= 0, "memfd_create failed");
            assert_eq!(libc::ftruncate(fd, MEM_SIZE as libc::off_t), 0, "ftruncate failed");
            let p = libc::mmap(ptr::null_mut(), MEM_SIZE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
            assert!(p != libc::MAP_FAILED, "mmap failed");
            Memory { file: File::from_raw_fd(fd), base: p as *mut u8 }
        }
    }
    fn addr(&self, gpa: u64) -> u64 {
        self.base as u64 + gpa
    }
    fn w16(&self, gpa: u64, v: u16) {
        // SAFETY: gpa is inside the mapping (the layout below keeps every address in range).
        unsafe { ptr::write_volatile(self.base.add(gpa as usize) as *mut u16, v) }
    }
    fn w32(&self, gpa: u64, v: u32) {
        unsafe { ptr::write_volatile(self.base.add(gpa as usize) as *mut u32, v) }
    }
    fn w64(&self, gpa: u64, v: u64) {
        unsafe { ptr::write_volatile(self.base.add(gpa as usize) as *mut u64, v) }
    }
    fn r16(&self, gpa: u64) -> u16 {
        unsafe { ptr::read_volatile(self.base.add(gpa as usize) as *const u16) }
    }
    fn r32(&self, gpa: u64) -> u32 {
        unsafe { ptr::read_volatile(self.base.add(gpa as usize) as *const u32) }
    }
    fn bytes(&self, gpa: u64, len: usize) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.base.add(gpa as usize), len) }
    }
}

/// A split virtqueue laid out at `at`: descriptors, then the available ring, then the used ring.
struct Vring {
    desc: u64,
    avail: u64,
    used: u64,
    next_avail: u16,
}

impl Vring {
    fn at(at: u64) -> Vring {
        Vring { desc: at, avail: at + 0x1000, used: at + 0x2000, next_avail: 0 }
    }
    fn post(&mut self, m: &Memory, head: u16, addr: u64, len: u32, flags: u16) {
        let d = self.desc + 16 * head as u64;
        m.w64(d, addr);
        m.w32(d + 8, len);
        m.w16(d + 12, flags);
        m.w16(d + 14, 0);
        m.w16(self.avail + 4 + 2 * (self.next_avail % QUEUE_SIZE) as u64, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        fence(Ordering::SeqCst);
        m.w16(self.avail + 2, self.next_avail);
    }
    fn used_idx(&self, m: &Memory) -> u16 {
        fence(Ordering::SeqCst);
        m.r16(self.used + 2)
    }
    /// (id, len) of used element `i`
    fn used_elem(&self, m: &Memory, i: u16) -> (u32, u32) {
        let e = self.used + 4 + 8 * (i % QUEUE_SIZE) as u64;
        (m.r32(e), m.r32(e + 4))
    }
}

fn frame(i: usize) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source (locally administered)
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for (k, b) in f[14..].iter_mut().enumerate() {
        *b = (i * 7 + k) as u8;
    }
    f
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let packets: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(32);
    let mem = Memory::new();
    let mut fe = Frontend::connect(path, 2).expect("connect");

    fe.set_owner().expect("SET_OWNER");
    let offered = fe.get_features().expect("GET_FEATURES");
    let wanted = VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES;
    assert_eq!(offered & wanted, wanted, "backend lacks VERSION_1 or PROTOCOL_FEATURES: 0x{offered:x}");
    let pf = fe.get_protocol_features().expect("GET_PROTOCOL_FEATURES");
    let use_pf = pf & (VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK);
    fe.set_protocol_features(use_pf).expect("SET_PROTOCOL_FEATURES");
    fe.set_features(wanted).expect("SET_FEATURES");
    println!("RUST-FRONTEND: features 0x{offered:x} offered, 0x{wanted:x} set; protocol features {use_pf:?}");
    fe.set_mem_table(&[VhostUserMemoryRegionInfo {
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem.base as u64,
        mmap_offset: 0,
        mmap_handle: mem.file.as_raw_fd(),
    }])
    .expect("SET_MEM_TABLE");

    let mut rings = [Vring::at(0x10000), Vring::at(0x20000)];
    let mut kicks = Vec::new();
    let mut calls = Vec::new();
    for (q, r) in rings.iter().enumerate() {
        fe.set_vring_num(q, QUEUE_SIZE).expect("SET_VRING_NUM");
        fe.set_vring_base(q, 0).expect("SET_VRING_BASE");
        let cfg = VringConfigData {
            queue_max_size: QUEUE_SIZE,
            queue_size: QUEUE_SIZE,
            flags: 0,
            desc_table_addr: mem.addr(r.desc),
            used_ring_addr: mem.addr(r.used),
            avail_ring_addr: mem.addr(r.avail),
            log_addr: None,
        };
        fe.set_vring_addr(q, &cfg).expect("SET_VRING_ADDR");
        let kick = EventFd::new(EFD_NONBLOCK).unwrap();
        let call = EventFd::new(EFD_NONBLOCK).unwrap();
        fe.set_vring_kick(q, &kick).expect("SET_VRING_KICK");
        fe.set_vring_call(q, &call).expect("SET_VRING_CALL");
        kicks.push(kick);
        calls.push(call);
    }
    for q in 0..2 {
        fe.set_vring_enable(q, true).expect("SET_VRING_ENABLE");
    }
    println!("RUST-FRONTEND: handshake done, 2 vrings of {QUEUE_SIZE} enabled");

    // rx buffers first (device-writable), then the frames on tx
    let rx_buf = |i: usize| 0x100000 + 2048 * i as u64;
    let tx_buf = |i: usize| 0x800000 + 2048 * i as u64;
    for i in 0..packets {
        rings[RX].post(&mem, i as u16, rx_buf(i), 2048, VRING_DESC_F_WRITE);
    }
    kicks[RX].write(1).unwrap();
    for i in 0..packets {
        mem.bytes(tx_buf(i), NET_HDR).fill(0);
        mem.bytes(tx_buf(i) + NET_HDR as u64, FRAME).copy_from_slice(&frame(i));
        rings[TX].post(&mem, i as u16, tx_buf(i), (NET_HDR + FRAME) as u32, 0);
    }
    kicks[TX].write(1).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while (rings[TX].used_idx(&mem) as usize) < packets || (rings[RX].used_idx(&mem) as usize) < packets {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let tx_used = rings[TX].used_idx(&mem) as usize;
    let rx_used = rings[RX].used_idx(&mem) as usize;
    println!("RUST-FRONTEND: tx used {tx_used} of {packets}, rx used {rx_used} of {packets}");
    // each frame counts once, however often it came back: a duplicate is not a frame returned
    let mut came_back = std::collections::HashSet::new();
    for i in 0..rx_used.min(packets) {
        let (id, len) = rings[RX].used_elem(&mem, i as u16);
        let got = mem.bytes(rx_buf(id as usize) + NET_HDR as u64, FRAME).to_vec();
        if len as usize >= NET_HDR + FRAME {
            if let Some(k) = (0..packets).find(|&k| got == frame(k)) {
                came_back.insert(k);
            }
        }
    }
    let returned = came_back.len();
    println!("RUST-FRONTEND: {returned} of {packets} frames came back byte for byte");
    for q in 0..2 {
        let _ = fe.set_vring_enable(q, false);
        let base = fe.get_vring_base(q).expect("GET_VRING_BASE");
        println!("RUST-FRONTEND: vring {q} stopped at {base}");
    }
    if tx_used == packets && returned == packets {
        println!("RUST-FRONTEND: PASS");
    } else {
        println!("RUST-FRONTEND: FAIL");
        std::process::exit(1);
    }
}
