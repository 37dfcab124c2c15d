//! Which PostgreSQL errors the ledger records as an event refused for good (`ledger_rejects`)
//! and which it retries: real errors from the real server (`DATABASE_URL`, default the local
//! `dispatch` database), each made on purpose.

use ledger::writer::is_refusal;
use sqlx::{Connection, PgConnection};

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dispatch".to_owned())
}

/// The database error `sql` raises on `conn`.
async fn error_of(
    conn: &mut PgConnection,
    sql: &'static str,
) -> Box<dyn sqlx::error::DatabaseError> {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Err(sqlx::Error::Database(e)) => e,
        other => panic!("{sql}: a database error was expected, got {other:?}"),
    }
}

#[tokio::test]
async fn what_the_statement_holds_is_refused_and_the_rest_is_retried() {
    let mut conn = PgConnection::connect(&database_url())
        .await
        .expect("PostgreSQL runs");
    let refused = [
        "SELECT 1 / 0",
        "SELECT 'not a number'::int",
        "CREATE TEMP TABLE once (id int PRIMARY KEY); INSERT INTO once VALUES (1), (1)",
        "CREATE TEMP TABLE needs (id int NOT NULL); INSERT INTO needs VALUES (NULL)",
    ];
    for sql in refused {
        let e = error_of(&mut conn, sql).await;
        assert!(is_refusal(e.as_ref()), "{sql}: {:?} {e}", e.code());
    }
    let transient = [
        // A statement that outlives its timeout (57014), as under a lock held too long.
        "SET statement_timeout = 10; SELECT pg_sleep(1)",
        // The transaction a serialization failure or deadlock aborts (40001, 40P01).
        "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$",
        "DO $$ BEGIN RAISE EXCEPTION 'cycle' USING ERRCODE = 'deadlock_detected'; END $$",
        "DO $$ BEGIN RAISE EXCEPTION 'full' USING ERRCODE = 'disk_full'; END $$",
    ];
    for sql in transient {
        let e = error_of(&mut conn, sql).await;
        assert!(!is_refusal(e.as_ref()), "{sql}: {:?} {e}", e.code());
        let _ = sqlx::raw_sql("RESET statement_timeout")
            .execute(&mut conn)
            .await;
    }
}
