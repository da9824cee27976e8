//! The project's central invariant, tested at random: after any sequence of
//! DML (single statements, multi-statement transactions, rollbacks, updates
//! and deletes of many rows, replaces), every SELECT gives the same answer
//! offloaded to the cluster (ON) and on the row store (OFF). Seeded and
//! reproducible: a failure prints the seed and the statement history.

use crate::common::Db;

/// A small deterministic generator (xorshift64*), so the test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CITIES: [&str; 5] = ["'Paris'", "'Oslo'", "'Rome'", "NULL", "'Lima'"];

fn random_value_row(rng: &mut Rng, id: u64) -> String {
    let amount = if rng.chance(10) {
        "NULL".to_string()
    } else {
        format!("{}.{:02}", rng.below(10_000) as i64 - 2_000, rng.below(100))
    };
    let day = format!("'2024-{:02}-{:02}'", 1 + rng.below(12), 1 + rng.below(28));
    let flag = ["true", "false", "NULL"][rng.below(3) as usize];
    format!(
        "({id}, {}, {amount}, {}, {day}, {flag})",
        rng.below(50),
        CITIES[rng.below(CITIES.len() as u64) as usize]
    )
}

fn random_dml(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => {
            let rows: Vec<String> = (0..1 + rng.below(20))
                .map(|_| {
                    let id = rng.below(400);
                    random_value_row(rng, id)
                })
                .collect();
            let verb = if rng.chance(50) {
                "REPLACE"
            } else {
                "INSERT IGNORE"
            };
            format!("{verb} INTO t VALUES {}", rows.join(", "))
        }
        4..=6 => {
            let lo = rng.below(400);
            let hi = lo + rng.below(150);
            match rng.below(4) {
                0 => format!("UPDATE t SET amount = amount + 1.25 WHERE id BETWEEN {lo} AND {hi}"),
                1 => format!(
                    "UPDATE t SET city = {}, flag = NOT flag WHERE grp = {}",
                    CITIES[rng.below(5) as usize],
                    rng.below(50)
                ),
                2 => format!("UPDATE t SET grp = grp + 1 WHERE id % 7 = {}", rng.below(7)),
                _ => format!("UPDATE t SET id = id + 1000 WHERE id = {lo}"),
            }
        }
        7..=8 => {
            let lo = rng.below(400);
            format!(
                "DELETE FROM t WHERE id BETWEEN {lo} AND {}",
                lo + rng.below(40)
            )
        }
        _ => format!(
            "DELETE FROM t WHERE city = {} AND grp < {}",
            CITIES[rng.below(3) as usize],
            rng.below(50)
        ),
    }
}

const QUERIES: [&str; 8] = [
    "SELECT count(*), sum(amount), min(day), max(day) FROM t",
    "SELECT city, count(*), sum(amount), avg(grp) FROM t GROUP BY city ORDER BY city NULLS FIRST",
    "SELECT id, grp, amount, city, day, flag FROM t ORDER BY id",
    "SELECT grp, count(*) FROM t WHERE flag GROUP BY grp HAVING count(*) > 1 ORDER BY grp",
    "SELECT id FROM t WHERE amount > 500 AND city IS NOT NULL ORDER BY amount DESC, id LIMIT 10",
    "SELECT a.grp, count(*) FROM t a JOIN t b ON a.grp = b.grp AND a.id < b.id GROUP BY a.grp ORDER BY a.grp",
    "SELECT date_part('month', day) AS m, sum(amount) FROM t GROUP BY m ORDER BY m",
    "SELECT count(DISTINCT city), count(flag), sum(CASE WHEN flag THEN 1 ELSE 0 END) FROM t",
];

fn check(db: &Db, rng: &mut Rng, seed: u64, step: usize, history: &[String]) {
    let query = QUERIES[rng.below(QUERIES.len() as u64) as usize];
    let on = db.rows(query);
    db.exec("SET use_secondary_engine = OFF");
    let off = db.rows(query);
    db.exec("SET use_secondary_engine = ON");
    if on != off {
        let tail: Vec<&String> = history.iter().rev().take(12).collect();
        panic!(
            "seed {seed}, step {step}: ON and OFF differ for `{query}`\nON:  {on:?}\nOFF: {off:?}\nlast statements (newest first): {tail:#?}"
        );
    }
}

fn run(seed: u64, steps: usize) {
    // Small chunks and several partitions, so deletes, compaction and merges
    // of small chunks all happen within a few hundred statements.
    let db = Db::new(&[
        ("nodes", "2"),
        ("chunk_rows", "64"),
        ("partitions_per_node", "2"),
    ]);
    db.exec(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, grp INT NOT NULL, amount DECIMAL(12,2), \
         city VARCHAR(10), day DATE, flag BOOLEAN)",
    );
    let mut rng = Rng(seed | 1);
    let rows: Vec<String> = (0..300).map(|id| random_value_row(&mut rng, id)).collect();
    db.exec(&format!("INSERT INTO t VALUES {}", rows.join(", ")));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let mut history = Vec::new();
    let mut step = 0;
    while step < steps {
        if rng.chance(20) {
            // A multi-statement transaction, committed or rolled back.
            let commit = rng.chance(70);
            db.exec("BEGIN");
            history.push("BEGIN".to_string());
            for _ in 0..1 + rng.below(5) {
                let statement = random_dml(&mut rng);
                // A statement may fail (e.g. a duplicate key): it undoes only itself.
                let _ = db.sql(&statement);
                history.push(statement);
                step += 1;
            }
            let end = if commit { "COMMIT" } else { "ROLLBACK" };
            db.exec(end);
            history.push(end.to_string());
        } else {
            let statement = random_dml(&mut rng);
            let _ = db.sql(&statement);
            history.push(statement);
            step += 1;
        }
        if rng.chance(35) {
            check(&db, &mut rng, seed, step, &history);
        }
    }
    for _ in 0..QUERIES.len() {
        check(&db, &mut rng, seed, step, &history);
    }
    // The cluster really was used and really changed.
    let status = db.rows("SELECT load_status FROM performance_schema.rpd_tables");
    assert_eq!(status, vec!["AVAIL_RPDGSTABSTATE"]);
}

#[test]
fn offload_on_and_off_agree_after_random_dml() {
    let steps: usize = std::env::var("LAKEWAVE_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    for seed in [7, 2024, 99_991] {
        run(seed, steps / 3);
    }
}

/// Several sessions write at once (their transactions interleave and wait
/// for each other's locks); between their statements another session checks
/// that ON and OFF agree on the committed state.
#[test]
fn offload_on_and_off_agree_while_several_sessions_write() {
    let steps: usize = std::env::var("LAKEWAVE_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let db = Db::new(&[
        ("nodes", "2"),
        ("chunk_rows", "64"),
        ("partitions_per_node", "2"),
    ]);
    db.exec(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, grp INT NOT NULL, amount DECIMAL(12,2), \
         city VARCHAR(10), day DATE, flag BOOLEAN)",
    );
    let mut rng = Rng(77);
    let rows: Vec<String> = (0..300).map(|id| random_value_row(&mut rng, id)).collect();
    db.exec(&format!("INSERT INTO t VALUES {}", rows.join(", ")));
    db.exec("ALTER TABLE t SECONDARY_LOAD");
    let pause = std::sync::RwLock::new(());
    let history = std::sync::Mutex::new(Vec::<String>::new());
    let writers_done = std::sync::atomic::AtomicUsize::new(0);
    const WRITERS: u64 = 3;
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let session = db.other();
            let (pause, history, done) = (&pause, &history, &writers_done);
            scope.spawn(move || {
                let mut rng = Rng(1000 + w);
                let mut step = 0;
                while step < steps / WRITERS as usize {
                    let in_transaction = rng.chance(20);
                    let statements = if in_transaction { 1 + rng.below(5) } else { 1 };
                    // The checker waits for whole transactions, never for a
                    // writer that waits for another's lock.
                    let _guard = pause.read().unwrap();
                    if in_transaction {
                        session.exec("BEGIN");
                    }
                    for _ in 0..statements {
                        let statement = random_dml(&mut rng);
                        let _ = session.sql(&statement);
                        history
                            .lock()
                            .unwrap()
                            .push(format!("session {w}: {statement}"));
                        step += 1;
                    }
                    if in_transaction {
                        let end = if rng.chance(70) { "COMMIT" } else { "ROLLBACK" };
                        session.exec(end);
                        history.lock().unwrap().push(format!("session {w}: {end}"));
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let checker = db.other();
        let mut rng = Rng(4242);
        let mut checks = 0;
        while writers_done.load(std::sync::atomic::Ordering::SeqCst) < WRITERS as usize
            || checks < QUERIES.len()
        {
            let _quiet = pause.write().unwrap();
            let seen = history.lock().unwrap().clone();
            check(&checker, &mut rng, 4242, seen.len(), &seen);
            checks += 1;
            drop(_quiet);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(checks > 10, "only {checks} checks ran beside the writers");
    });
}
