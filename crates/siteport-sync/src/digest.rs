//! Local hashes in the algorithms FTP servers compute (`HASH`, `XSHA256`, `XSHA1`, `XMD5`),
//! to compare a local file with a server's copy when nothing records what the server has.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::remote::HashAlg;

/// The hash of a local file in `alg`, lowercase hex, streamed. Blocking.
pub fn hash_file_with(path: &Path, alg: HashAlg) -> Result<String> {
    let f = std::fs::File::open(path).map_err(|e| Error::local_io("open for hashing", path, e))?;
    hash_reader_with(f, alg).map_err(|e| Error::local_io("read for hashing", path, e))
}

/// The hash in `alg` of everything `r` yields, lowercase hex: for a file already opened (and
/// checked) by the caller. Blocking.
pub(crate) fn hash_reader_with(r: impl Read, alg: HashAlg) -> std::io::Result<String> {
    use sha2::Digest as _;
    let mut s256 = sha2::Sha256::new();
    let mut s1 = sha1::Sha1::new();
    let mut m5 = md5::Md5::new();
    read_chunks(r, |chunk| match alg {
        HashAlg::Sha256 => s256.update(chunk),
        HashAlg::Sha1 => s1.update(chunk),
        HashAlg::Md5 => m5.update(chunk),
    })?;
    let bytes: Vec<u8> = match alg {
        HashAlg::Sha256 => s256.finalize().to_vec(),
        HashAlg::Sha1 => s1.finalize().to_vec(),
        HashAlg::Md5 => m5.finalize().to_vec(),
    };
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Feeds everything `r` yields to `each`, a chunk at a time, through one 64 KiB buffer per
/// thread. A fresh zeroed buffer per file (what `blake3::Hasher::update_reader` does) costs
/// more than reading and hashing a small file: 10,000 files of 1 KiB zeroed 640 MiB.
pub(crate) fn read_chunks(mut r: impl Read, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    thread_local! {
        static BUF: std::cell::RefCell<Box<[u8]>> =
            std::cell::RefCell::new(vec![0u8; 64 * 1024].into_boxed_slice());
    }
    BUF.with_borrow_mut(|buf| {
        loop {
            match r.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => each(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hash_file_with(&p, HashAlg::Sha256).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_file_with(&p, HashAlg::Sha1).unwrap(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hash_file_with(&p, HashAlg::Md5).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }
}
