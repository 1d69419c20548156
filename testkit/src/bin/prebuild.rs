//! Builds the heavy cached fixtures before the tests need them, all at the
//! same time: every debootstrap tree the tests boot (the three cloud-init
//! generations and the systemd tree) and the wine prefix, each through the
//! same cache, lock and key as a test would build it
//! (`testkit::rootfs::tree_dir`, `testkit::wine::cache_dir`), so what is
//! built here is what the tests find, and one the tests are building is
//! waited for, not built twice.
//!
//! Why it exists: the builds are mostly downloading and unpacking, so CI
//! (`.ci/run`) starts this in the background while the CPU-bound lints and
//! release builds run, instead of paying for them inside the tests step.
//! Prints each fixture's time; exits non-zero if one failed (the tests
//! would then fail on it with the full message).

use std::time::Instant;

use testkit::rootfs::{tree_dir, Tree};

fn main() {
    let started = Instant::now();
    let mut trees: Vec<Tree> = Tree::CLOUD_INIT.to_vec();
    trees.push(testkit::nspawn::BOOKWORM_SYSTEMD);
    let builds: Vec<_> = trees
        .into_iter()
        .map(|tree| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let dir = tree_dir(tree);
                println!(
                    "prebuild: tree {} ready in {:.1?} ({})",
                    tree.name,
                    t.elapsed(),
                    dir.display()
                );
            })
        })
        .chain(std::iter::once(std::thread::spawn(|| {
            let t = Instant::now();
            let dir = testkit::wine::cache_dir();
            println!(
                "prebuild: wine prefix ready in {:.1?} ({})",
                t.elapsed(),
                dir.display()
            );
        })))
        .collect();
    let failed = builds
        .into_iter()
        .map(|b| b.join())
        .filter(Result::is_err)
        .count();
    println!("prebuild: done in {:.1?}", started.elapsed());
    std::process::exit(i32::from(failed > 0));
}
