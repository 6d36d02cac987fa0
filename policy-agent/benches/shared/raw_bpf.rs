//! Programs and maps made with the raw bpf() system call, sharing nothing with our object or
//! loader: the empty tc program that is the decision bench's floor, and the one-step programs
//! of the step-cost bench. A few instructions are assembled by hand ([`Insn`]).

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use anyhow::{Context as _, bail};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

/// `TC_ACT_UNSPEC`, what every program here returns (as the test run reports it).
const RETURNED: u32 = u32::MAX;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the kernel zero-extends the rest.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr`'s `test` member.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// The leading fields of `union bpf_attr` for BPF_MAP_CREATE.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// `union bpf_attr` for the element commands.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, correctly laid out bpf_attr prefix of the given size; every
    // pointer in it refers to memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned_fd(fd: libc::c_long) -> anyhow::Result<OwnedFd> {
    let fd = i32::try_from(fd).context("fd out of range")?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One BPF instruction (`struct bpf_insn`), as the kernel reads it.
#[derive(Clone, Copy)]
pub struct Insn(u64);

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        let [o0, o1] = off.to_le_bytes();
        let [i0, i1, i2, i3] = imm.to_le_bytes();
        Self(u64::from_le_bytes([
            code,
            dst | src << 4,
            o0,
            o1,
            i0,
            i1,
            i2,
            i3,
        ]))
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub fn mov_imm(dst: u8, imm: i32) -> Self {
        Self::new(0xb7, dst, 0, 0, imm)
    }

    /// `dst = src` (64-bit).
    pub fn mov_reg(dst: u8, src: u8) -> Self {
        Self::new(0xbf, dst, src, 0, 0)
    }

    /// `dst += imm` (64-bit).
    pub fn add_imm(dst: u8, imm: i32) -> Self {
        Self::new(0x07, dst, 0, 0, imm)
    }

    /// `*(u64 *)(dst + off) = imm`.
    pub fn store_dw_imm(dst: u8, off: i16, imm: i32) -> Self {
        Self::new(0x7a, dst, 0, off, imm)
    }

    /// `call helper`.
    pub fn call(helper: i32) -> Self {
        Self::new(0x85, 0, 0, 0, helper)
    }

    pub fn exit() -> Self {
        Self::new(0x95, 0, 0, 0, 0)
    }

    /// `dst = map` (the two-slot `ld_imm64` with `BPF_PSEUDO_MAP_FD`).
    pub fn load_map(dst: u8, map: &Map) -> [Self; 2] {
        [
            Self::new(0x18, dst, 1, 0, map.fd.as_raw_fd()),
            Self::new(0, 0, 0, 0, 0),
        ]
    }
}

/// A `BPF_PROG_TYPE_SCHED_CLS` program.
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// `r0 = TC_ACT_UNSPEC; exit`: what `BPF_PROG_TEST_RUN` itself costs per run.
    pub fn empty() -> anyhow::Result<Self> {
        Self::load("bench_empty", &[])
    }

    /// Loads `body` followed by `r0 = TC_ACT_UNSPEC; exit`.
    pub fn load(name: &str, body: &[Insn]) -> anyhow::Result<Self> {
        let mut insns: Vec<u64> = body.iter().map(|i| i.0).collect();
        insns.push(Insn::mov_imm(0, -1).0);
        insns.push(Insn::exit().0);
        let license = c"GPL";
        let mut prog_name = [0u8; 16];
        let len = name.len().min(15);
        prog_name[..len].copy_from_slice(&name.as_bytes()[..len]);
        let mut log = vec![0u8; 64 * 1024];
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_SCHED_CLS,
            insn_cnt: u32::try_from(insns.len()).context("program too long")?,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 1,
            log_size: u32::try_from(log.len()).context("log too long")?,
            log_buf: log.as_mut_ptr() as u64,
            prog_name,
            ..ProgLoadAttr::default()
        };
        let fd = bpf(BPF_PROG_LOAD, &mut attr).with_context(|| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            format!(
                "BPF_PROG_LOAD of {name}; verifier log:\n{}",
                String::from_utf8_lossy(&log[..end])
            )
        })?;
        Ok(Self { fd: owned_fd(fd)? })
    }

    /// The kernel's mean time per run over `repeat` runs on `frame`.
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> anyhow::Result<Duration> {
        let mut attr = TestRunAttr {
            prog_fd: u32::try_from(self.fd.as_raw_fd()).context("negative fd")?,
            data_size_in: u32::try_from(frame.len()).context("frame too long")?,
            data_in: frame.as_ptr() as u64,
            repeat,
            ..TestRunAttr::default()
        };
        bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN")?;
        if attr.retval != RETURNED {
            bail!("the program returned {} instead of -1", attr.retval);
        }
        Ok(Duration::from_nanos(u64::from(attr.duration)))
    }
}

/// A map (closed when dropped).
pub struct Map {
    fd: OwnedFd,
    value_size: usize,
    per_cpu: bool,
}

impl Map {
    /// `map_type` as the kernel numbers them (`BPF_MAP_TYPE_*`); `flags` as BPF_MAP_CREATE's.
    pub fn create(
        map_type: u32,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
        flags: u32,
    ) -> anyhow::Result<Self> {
        let mut attr = MapCreateAttr {
            map_type,
            key_size: u32::try_from(key_size).context("key too large")?,
            value_size: u32::try_from(value_size).context("value too large")?,
            max_entries,
            map_flags: flags,
        };
        let fd = bpf(BPF_MAP_CREATE, &mut attr)
            .with_context(|| format!("BPF_MAP_CREATE of map type {map_type}"))?;
        let per_cpu = matches!(map_type, PERCPU_HASH | PERCPU_ARRAY | LRU_PERCPU_HASH);
        Ok(Self {
            fd: owned_fd(fd)?,
            value_size,
            per_cpu,
        })
    }

    /// Writes `key` with an all-zero value (on every CPU, for a per-CPU map).
    pub fn insert_zeroed(&self, key: &[u8]) -> anyhow::Result<()> {
        // A per-CPU map takes one value per possible CPU, at 8-byte strides; the kernel
        // reads only as many as there are, so room for plenty will do.
        let copies = if self.per_cpu { 1024 } else { 1 };
        let value = vec![0u8; self.value_size.next_multiple_of(8) * copies];
        let mut attr = MapElemAttr {
            map_fd: u32::try_from(self.fd.as_raw_fd()).context("negative fd")?,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..MapElemAttr::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).context("BPF_MAP_UPDATE_ELEM")?;
        Ok(())
    }
}

/// `BPF_MAP_TYPE_*` numbers.
pub const HASH: u32 = 1;
pub const ARRAY: u32 = 2;
pub const PERCPU_HASH: u32 = 5;
pub const PERCPU_ARRAY: u32 = 6;
pub const LRU_HASH: u32 = 9;
pub const LRU_PERCPU_HASH: u32 = 10;

/// `BPF_F_NO_COMMON_LRU`: an LRU map's free lists per CPU instead of one shared.
pub const NO_COMMON_LRU: u32 = 2;

/// Helper numbers (`BPF_FUNC_*`).
pub const MAP_LOOKUP_ELEM: i32 = 1;
pub const MAP_UPDATE_ELEM: i32 = 2;
pub const KTIME_GET_NS: i32 = 5;
pub const KTIME_GET_COARSE_NS: i32 = 160;
