//! A digest of a manifest directory's contents, so that a writer (the lab, a test, an operator)
//! can tell when the agent has programmed exactly the files it wrote.

use std::{fs, io, path::Path};

use sha2::{Digest as _, Sha256};

/// Whether the file datastore reads this directory entry: regular `*.yaml`, `*.yml` and
/// `*.json` files whose names do not start with `.` (editors' and writers' temporary files do).
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
}

/// SHA-256 over the manifest files, sorted by name: for each, the name, a NUL, the length as
/// 8 little-endian bytes, and the contents.
pub fn digest_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (name, contents) in files {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the manifest files of `dir` (not recursively) as the file datastore does.
pub fn read_manifest_files(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_manifest_name(&name) || !is_file(&entry)? {
            continue;
        }
        match read_capped(&entry.path()) {
            Ok(contents) => files.push((name, contents)),
            // Deleted between listing and reading: it is simply not part of this snapshot.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    files.sort();
    Ok(files)
}

/// The largest manifest file read whole (64 MiB: a cluster's every object of a kind fits
/// many times over). A larger one is read only this far plus one byte, which is enough to
/// tell it is too large (the loader refuses it and keeps what it held before) and bounds the
/// memory a runaway writer can make the agent take.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;

    let mut contents = Vec::new();
    fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut contents)?;
    Ok(contents)
}

/// Whether the entry is a regular file, or a symlink to one: a ConfigMap volume's files are
/// symlinks (`policy.yaml -> ..data/policy.yaml`, `..data -> ..2024_01_01_00_00_00.0123`), and so
/// are manifests an operator links in. A dangling link is no file.
fn is_file(entry: &fs::DirEntry) -> io::Result<bool> {
    let file_type = entry.file_type()?;
    if !file_type.is_symlink() {
        return Ok(file_type.is_file());
    }
    match fs::metadata(entry.path()) {
        Ok(target) => Ok(target.is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Digest of the manifest files currently in `dir`.
pub fn dir_digest(dir: &Path) -> io::Result<String> {
    let files = read_manifest_files(dir)?;
    Ok(digest_files(
        files.iter().map(|(n, c)| (n.as_str(), c.as_slice())),
    ))
}
