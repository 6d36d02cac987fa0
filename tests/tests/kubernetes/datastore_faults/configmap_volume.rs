//! A ConfigMap volume as the kubelet writes and swaps it.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

/// A ConfigMap volume as the kubelet writes it: `..<timestamp>/` holds the files, `..data`
/// links to it, and each key is a link `name -> ..data/name`. An update writes a new
/// timestamped directory, points `..data_tmp` at it, renames that over `..data`, adds links
/// for new keys, removes those of deleted keys and the old directory.
pub(super) struct ConfigMapVolume {
    pub(super) dir: PathBuf,
    generation: u32,
    keys: BTreeSet<String>,
}

impl ConfigMapVolume {
    pub(super) fn new(dir: PathBuf) -> ConfigMapVolume {
        fs::create_dir_all(&dir).expect("volume directory");
        ConfigMapVolume {
            dir,
            generation: 0,
            keys: BTreeSet::new(),
        }
    }

    pub(super) fn update(&mut self, files: &[(&str, String)]) {
        self.generation += 1;
        let data = format!("..2026_12_07_00_00_00.{:04}", self.generation);
        let data_dir = self.dir.join(&data);
        fs::create_dir(&data_dir).expect("timestamped directory");
        for (name, contents) in files {
            fs::write(data_dir.join(name), contents).expect("key file");
        }
        let old = fs::read_link(self.dir.join("..data")).ok();
        symlink(&data, self.dir.join("..data_tmp")).expect("..data_tmp");
        fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("..data swap");
        let keys: BTreeSet<String> = files.iter().map(|(n, _)| (*n).to_owned()).collect();
        for key in keys.difference(&self.keys) {
            symlink(Path::new("..data").join(key), self.dir.join(key)).expect("key link");
        }
        for key in self.keys.difference(&keys) {
            fs::remove_file(self.dir.join(key)).expect("removing a key link");
        }
        if let Some(old) = old {
            fs::remove_dir_all(self.dir.join(old)).expect("removing the old directory");
        }
        self.keys = keys;
    }
}
