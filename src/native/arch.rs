//! Checks on a library file before dlopen: refuse libraries built for
//! another CPU or object format ("built for aarch64" instead of a cryptic
//! loader error), and truncated ELF files, which the loader would map and
//! then fault on (SIGBUS) instead of failing cleanly.

use crate::error::{fail, Result, Status};

/// Check an object file header against the running process.
///
/// `header` is the start of the file (64 bytes are enough). Only a *known*
/// mismatch is an error; a format we cannot classify is left to the loader.
pub fn check(header: &[u8]) -> Result<()> {
    if header.len() < 20 {
        return fail(
            Status::NotAPlugin,
            format!("file is too short to be a shared library ({} bytes)", header.len()),
        );
    }
    let found = if header.starts_with(b"\x7fELF") {
        let class = match header[4] {
            1 => 32,
            2 => 64,
            _ => 0,
        };
        let machine = if header[5] == 2 {
            u16::from_be_bytes([header[18], header[19]])
        } else {
            u16::from_le_bytes([header[18], header[19]])
        };
        Object::Elf { class, machine }
    } else if header.starts_with(&[0xcf, 0xfa, 0xed, 0xfe]) || header.starts_with(&[0xce, 0xfa, 0xed, 0xfe]) {
        Object::MachO
    } else if header.starts_with(b"MZ") {
        Object::Pe
    } else {
        return Ok(()); // unknown: let the loader judge
    };
    let expected = Object::native();
    if found.format() != expected.format() {
        return fail(
            Status::ArchitectureMismatch,
            format!("file is {}, this host needs {}", found.describe(), expected.describe()),
        );
    }
    if let (Object::Elf { class: c1, machine: m1 }, Object::Elf { class: c2, machine: m2 }) = (found, expected) {
        if m2 != 0 && (m1 != m2 || c1 != c2) {
            return fail(
                Status::ArchitectureMismatch,
                format!("file is built for {}, this host runs on {}", found.describe(), expected.describe()),
            );
        }
    }
    Ok(())
}

/// Refuse an ELF file whose program headers or loadable segments reach past
/// its end. `read_at(offset, len)` reads part of the file; `file_len` is its size.
pub fn check_complete(
    header: &[u8],
    file_len: u64,
    mut read_at: impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<()> {
    // 64-bit little-endian ELF only; other formats are left to their loader.
    if !(header.starts_with(b"\x7fELF") && header.len() >= 64 && header[4] == 2 && header[5] == 1) {
        return Ok(());
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let truncated = |what: String| {
        fail(Status::LibraryLoad, format!("truncated or corrupt ELF file ({file_len} bytes): {what}"))
    };
    let (phoff, phentsize, phnum) = (u64_at(header, 0x20), u16_at(header, 0x36), u16_at(header, 0x38));
    if phentsize < 56 && phnum > 0 {
        return truncated(format!("program header entries of {phentsize} bytes"));
    }
    let table_len = phentsize * phnum;
    if phoff.checked_add(table_len).is_none_or(|end| end > file_len) {
        return truncated(format!("program headers end at {} ", phoff.saturating_add(table_len)));
    }
    let table = read_at(phoff, table_len as usize)
        .map_err(|e| crate::error::Error::new(Status::Io, format!("cannot read program headers: {e}")))?;
    for i in 0..phnum as usize {
        let ph = &table[i * phentsize as usize..];
        const PT_LOAD: u32 = 1;
        if u32::from_le_bytes(ph[..4].try_into().unwrap()) != PT_LOAD {
            continue;
        }
        let (offset, filesz) = (u64_at(ph, 8), u64_at(ph, 32));
        if offset.checked_add(filesz).is_none_or(|end| end > file_len) {
            return truncated(format!("segment {i} ends at {}", offset.saturating_add(filesz)));
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Object {
    Elf { class: u8, machine: u16 },
    MachO,
    Pe,
}

impl Object {
    fn format(self) -> &'static str {
        match self {
            Object::Elf { .. } => "ELF",
            Object::MachO => "Mach-O",
            Object::Pe => "PE",
        }
    }

    fn native() -> Object {
        if cfg!(target_os = "macos") {
            Object::MachO
        } else if cfg!(windows) {
            Object::Pe
        } else {
            let machine = if cfg!(target_arch = "x86_64") {
                0x3e
            } else if cfg!(target_arch = "aarch64") {
                0xb7
            } else if cfg!(target_arch = "x86") {
                0x03
            } else if cfg!(target_arch = "arm") {
                0x28
            } else if cfg!(target_arch = "riscv64") {
                0xf3
            } else {
                0 // unknown to us: do not check the machine
            };
            let class = if cfg!(target_pointer_width = "64") { 64 } else { 32 };
            Object::Elf { class, machine }
        }
    }

    fn describe(self) -> String {
        match self {
            Object::Elf { class, machine } => {
                let arch = match machine {
                    0x03 => "x86".to_string(),
                    0x28 => "arm".to_string(),
                    0x3e => "x86_64".to_string(),
                    0xb7 => "aarch64".to_string(),
                    0xf3 => "riscv".to_string(),
                    0x08 => "mips".to_string(),
                    0x14 => "powerpc".to_string(),
                    0x15 => "powerpc64".to_string(),
                    0x16 => "s390".to_string(),
                    other => format!("e_machine 0x{other:x}"),
                };
                format!("ELF {class}-bit {arch}")
            }
            Object::MachO => "Mach-O".to_string(),
            Object::Pe => "PE (Windows)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn native_elf_passes_and_foreign_fails() {
        assert!(check(&elf(0x3e)).is_ok());
        let err = check(&elf(0xb7)).unwrap_err();
        assert_eq!(err.status, Status::ArchitectureMismatch);
        assert!(err.message.contains("aarch64") && err.message.contains("x86_64"), "{}", err.message);
        let err = check(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00").unwrap_err();
        assert!(err.message.contains("PE"), "{}", err.message);
    }

    #[test]
    fn short_file_is_not_a_plugin() {
        assert_eq!(check(b"\x7fELF").unwrap_err().status, Status::NotAPlugin);
    }
}
