//! An HA group of three instances in one process, each with its own database
//! file and Raft port on loopback: a primary is elected, a transaction on it
//! reaches the others as the same rows, a replicated DDL runs everywhere, and
//! writes anywhere but on the primary are refused with MySQL's 1290.

use std::time::{Duration, Instant};

use lakewave::group::{GroupFile, Member, init_text};

use crate::common::Db;

fn free_base(size: u16) -> u16 {
    'search: for base in (30000..60000u16).step_by(97) {
        let mut held = Vec::new();
        for port in base..base + size {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => held.push(l),
                Err(_) => continue 'search,
            }
        }
        return base;
    }
    panic!("no free block of ports");
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn a_group_elects_a_primary_and_every_member_gets_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3 + 4 * 3);
    let text = init_text("g", dir.path(), 3, 0, base, None).unwrap();
    let file = GroupFile::parse(&dir.path().join("group.toml"), &text).unwrap();
    let members: Vec<(Db, Member)> = ["m1", "m2", "m3"]
        .iter()
        .map(|name| {
            let db = Db::open(Some(&dir.path().join(format!("{name}.db"))), &[]);
            let member =
                Member::start(&db.instance, file.clone(), name, Default::default()).unwrap();
            (db, member)
        })
        .collect();
    wait_until("a primary", || {
        members
            .iter()
            .filter(|(_, m)| m.is_writable_primary())
            .count()
            == 1
    });
    let (primary, _) = members
        .iter()
        .find(|(_, m)| m.is_writable_primary())
        .unwrap();
    primary.exec("CREATE TABLE t (id INT PRIMARY KEY, v TEXT, r DOUBLE)");
    primary.exec("INSERT INTO t VALUES (1, 'one', rand()), (2, 'two', rand())");
    primary.exec("BEGIN");
    primary.exec("INSERT INTO t VALUES (3, 'three', rand())");
    primary.exec("UPDATE t SET v = 'uno' WHERE id = 1");
    primary.exec("DELETE FROM t WHERE id = 2");
    primary.exec("COMMIT");
    let expected = primary.rows("SELECT * FROM t ORDER BY id");
    assert_eq!(expected.len(), 2);
    for (db, member) in &members {
        wait_until("the member to apply", || {
            db.sql("SELECT * FROM t ORDER BY id")
                .map(|b| crate::common::render(&b) == expected)
                .unwrap_or(false)
        });
        if !member.is_writable_primary() {
            let error = db.sql("INSERT INTO t VALUES (9, 'x', 0)").unwrap_err();
            assert_eq!(error.code().errno, 1290, "{}", error.chain_message());
            let error = db.sql("DROP TABLE t").unwrap_err();
            assert_eq!(error.code().errno, 1290);
            assert!(member.status()["primary"].is_string());
        }
    }
    for (db, member) in members {
        member.stop();
        db.close();
    }
}
