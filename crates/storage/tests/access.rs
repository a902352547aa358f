//! Roles, grants, sessions, seat fields and notices written and read back
//! through the crate's own readers, on SQLite and (with
//! `SUBLEDGER_TEST_POSTGRES_URL`) PostgreSQL. Another tenant's rows must
//! read as missing.

#[macro_use]
mod support;

use subledger_domain::access::app;
use subledger_domain::ids::{AccountId, NoticeId, TenantId};
use subledger_storage::accounts::{self, NewAccount};
use subledger_storage::notices::{self, NoticeQuery};
use subledger_storage::roles;
use subledger_storage::sessions::{self, NewSession};
use subledger_storage::subusers::{self, SeatChanges, SubUserQuery};
use subledger_storage::tenants::{self, NewTenant};
use subledger_storage::{StorageError, Store, StoreOptions, UniqueKey};
use support::TestDb;

const T0_US: i64 = 1_700_000_000_000_000;

on_both_backends!(roles_and_grants_round_trip, sessions_and_logins_round_trip, seats_and_listings_round_trip, notices_round_trip);

/// Two tenants with two accounts each.
struct Fixture {
    store: Store,
    backend: &'static str,
    tenant: TenantId,
    other: TenantId,
    amy: AccountId,
    bob: AccountId,
    stranger: AccountId,
}

impl Fixture {
    async fn new(db: &TestDb) -> Fixture {
        let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
        let mut tx = store.begin_write().await.unwrap();
        let mut ids = Vec::new();
        for name in ["tenant", "other"] {
            let tenant = NewTenant {
                public_id: &format!("tn_{name}"),
                name,
                timezone: "Asia/Shanghai",
                app_id: &format!("app-{name}"),
                app_key: "key",
                api_token_sha256: &format!("token-{name}"),
                account_limit: 10,
                default_daily_quota: 100,
                now_us: T0_US,
            };
            ids.push(tenants::insert(&mut tx, &tenant).await.unwrap());
        }
        let account = |tenant_id, username| NewAccount {
            tenant_id,
            username,
            user_type: 1,
            phone: None,
            email: None,
            company_name: None,
            company_url: None,
            password_hash: Some("hash"),
            api_user: None,
            api_key_sha256: None,
            daily_quota: 100,
            funding: "tenant",
            now_us: T0_US,
        };
        let amy = accounts::insert(&mut tx, &account(ids[0], "amy_seat")).await.unwrap();
        let bob = accounts::insert(&mut tx, &account(ids[0], "bob_seat")).await.unwrap();
        let stranger = accounts::insert(&mut tx, &account(ids[1], "stranger")).await.unwrap();
        tx.commit().await.unwrap();
        Fixture { backend: store.backend().name(), store, tenant: ids[0], other: ids[1], amy, bob, stranger }
    }
}

async fn roles_and_grants_round_trip(db: TestDb) {
    let f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    let agent = roles::insert(&mut tx, f.tenant, "agent", 3, T0_US + 1).await.unwrap();
    let lead = roles::insert(&mut tx, f.tenant, "lead", 7, T0_US + 2).await.unwrap();
    roles::set_apps(&mut tx, agent, &[app::ACCOUNTS_VIEW, app::FUNDS_VIEW]).await.unwrap();
    assert_eq!(roles::count_in_tx(&mut tx, f.tenant).await.unwrap(), 2, "{}", f.backend);
    tx.commit().await.unwrap();

    let mut tx = f.store.begin_write().await.unwrap();
    let taken = roles::insert(&mut tx, f.tenant, "agent", 0, T0_US).await;
    assert!(matches!(taken, Err(StorageError::UniqueViolation { key: UniqueKey::RoleName, .. })), "{}: {taken:?}", f.backend);
    drop(tx);
    // Another tenant may use the same name.
    let mut tx = f.store.begin_write().await.unwrap();
    let theirs = roles::insert(&mut tx, f.other, "agent", 0, T0_US).await.unwrap();
    tx.commit().await.unwrap();

    let listed = roles::list(&f.store, f.tenant, 10).await.unwrap();
    assert_eq!(listed.iter().map(|r| (r.role_id(), r.name.as_str(), r.level, r.created_at_us)).collect::<Vec<_>>(), [(agent, "agent", 3, T0_US + 1), (lead, "lead", 7, T0_US + 2)], "{}", f.backend);
    assert!(roles::get(&f.store, f.tenant, theirs).await.unwrap().is_none(), "{}: another tenant's role reads as missing", f.backend);
    assert_eq!(roles::apps(&f.store, agent).await.unwrap(), [app::ACCOUNTS_VIEW, app::FUNDS_VIEW], "{}", f.backend);

    let mut tx = f.store.begin_write().await.unwrap();
    let renamed = roles::update(&mut tx, f.tenant, lead, Some("leader"), None, T0_US + 9).await.unwrap().expect("the role");
    assert_eq!((renamed.name.as_str(), renamed.level, renamed.updated_at_us), ("leader", 7, T0_US + 9), "{}", f.backend);
    assert!(roles::update(&mut tx, f.tenant, theirs, Some("x"), None, T0_US).await.unwrap().is_none(), "{}", f.backend);
    // Assigned, a role is held; its grants and the account's own come back in one read.
    subusers::update_seat(&mut tx, f.tenant, f.amy, &SeatChanges { role: Some(Some(agent)), ..SeatChanges::default() }, T0_US).await.unwrap();
    subusers::set_grants(&mut tx, f.amy, &[(app::OPLOG_VIEW, true), (app::FUNDS_VIEW, false)]).await.unwrap();
    subusers::set_grants(&mut tx, f.amy, &[(app::OPLOG_VIEW, false)]).await.unwrap();
    assert_eq!(roles::holders_in_tx(&mut tx, f.tenant, agent).await.unwrap(), 1, "{}", f.backend);
    assert!(!roles::delete(&mut tx, f.tenant, theirs).await.unwrap(), "{}: not ours to delete", f.backend);
    assert!(roles::delete(&mut tx, f.tenant, lead).await.unwrap(), "{}", f.backend);
    tx.commit().await.unwrap();
    let rows = subusers::grant_rows(&f.store, f.amy).await.unwrap();
    let mut own = rows.own.clone();
    own.sort();
    let mut template = rows.role_template.clone();
    template.sort();
    assert_eq!(template, [app::ACCOUNTS_VIEW, app::FUNDS_VIEW], "{}", f.backend);
    assert_eq!(own, [(app::FUNDS_VIEW, false), (app::OPLOG_VIEW, false)], "{}: a later revocation replaces the grant", f.backend);
    // Without the template flag the role grants nothing.
    let mut tx = f.store.begin_write().await.unwrap();
    subusers::update_seat(&mut tx, f.tenant, f.amy, &SeatChanges { role_template: Some(false), ..SeatChanges::default() }, T0_US).await.unwrap();
    tx.commit().await.unwrap();
    assert!(subusers::grant_rows(&f.store, f.amy).await.unwrap().role_template.is_empty(), "{}", f.backend);
    assert_eq!(roles::list(&f.store, f.tenant, 10).await.unwrap().len(), 1, "{}", f.backend);
}

async fn sessions_and_logins_round_trip(db: TestDb) {
    let f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    sessions::insert(&mut tx, &NewSession { token_sha256: "digest-a", tenant: f.tenant, account: f.amy, created_at_us: T0_US, expires_at_us: T0_US + 100 }).await.unwrap();
    sessions::insert(&mut tx, &NewSession { token_sha256: "digest-b", tenant: f.tenant, account: f.amy, created_at_us: T0_US, expires_at_us: T0_US + 200 }).await.unwrap();
    tx.commit().await.unwrap();
    let live = sessions::find_live(&f.store, "digest-a", T0_US + 50).await.unwrap().expect("a live session");
    assert_eq!(
        (live.tenant_id, live.account_id, live.username.as_str(), live.expires_at_us, live.access_state, live.locked_until_us),
        (f.tenant.0, f.amy.0, "amy_seat", T0_US + 100, 1, None),
        "{}",
        f.backend
    );
    assert!(sessions::find_live(&f.store, "digest-a", T0_US + 100).await.unwrap().is_none(), "{}: expired at its instant", f.backend);
    assert!(sessions::find_live(&f.store, "digest-x", T0_US).await.unwrap().is_none(), "{}", f.backend);

    let mut tx = f.store.begin_write().await.unwrap();
    assert_eq!(sessions::end(&mut tx, "digest-a", T0_US + 60).await.unwrap(), Some((f.tenant, f.amy, "amy_seat".to_owned())), "{}", f.backend);
    assert_eq!(sessions::end(&mut tx, "digest-a", T0_US + 61).await.unwrap(), None, "{}: ends once", f.backend);
    assert_eq!(sessions::end_all_of(&mut tx, f.amy, T0_US + 62).await.unwrap(), 1, "{}", f.backend);
    tx.commit().await.unwrap();
    assert_eq!(sessions::live_count(&f.store, f.amy, T0_US + 63).await.unwrap(), 0, "{}", f.backend);
    assert_eq!(sessions::forget_old(&f.store, T0_US + 1_000, 1).await.unwrap(), 1, "{}", f.backend);
    assert_eq!(sessions::forget_old(&f.store, T0_US + 1_000, 10).await.unwrap(), 1, "{}", f.backend);

    // Failed logins count, lock at the third and start over; a success clears them.
    for (attempt, expected) in [(1, None), (2, None), (3, Some(T0_US + 900))] {
        let mut tx = f.store.begin_write().await.unwrap();
        let locked = subusers::count_failed_login(&mut tx, f.tenant, f.amy, 3, T0_US + 900).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(locked, expected, "{}: attempt {attempt}", f.backend);
    }
    let state = subusers::login_state(&f.store, f.tenant, "amy_seat").await.unwrap().expect("the account");
    assert_eq!((state.failed_logins, state.locked_until_us, state.password_hash.as_deref()), (0, Some(T0_US + 900), Some("hash")), "{}", f.backend);
    let mut tx = f.store.begin_write().await.unwrap();
    assert_eq!(subusers::count_failed_login(&mut tx, f.other, f.amy, 3, 0).await.unwrap(), None, "{}: not the other tenant's", f.backend);
    subusers::count_login(&mut tx, f.amy, T0_US + 5).await.unwrap();
    tx.commit().await.unwrap();
    let state = subusers::login_state(&f.store, f.tenant, "amy_seat").await.unwrap().unwrap();
    assert_eq!((state.failed_logins, state.locked_until_us), (0, None), "{}", f.backend);
    assert!(subusers::login_state(&f.store, f.other, "amy_seat").await.unwrap().is_none(), "{}", f.backend);
    let seat = subusers::get(&f.store, f.tenant, f.amy).await.unwrap().unwrap();
    assert_eq!((seat.account.logins, seat.account.last_login_at_us), (1, Some(T0_US + 5)), "{}", f.backend);
}

async fn seats_and_listings_round_trip(db: TestDb) {
    let f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    let role = roles::insert(&mut tx, f.tenant, "夜班坐席", 1, T0_US).await.unwrap();
    let changes = SeatChanges {
        person_name: Some("王小明"),
        job_number: Some("J-007"),
        extension: Some(8001),
        email: Some("amy@example.com"),
        phone: Some("13900000001"),
        department: Some("support"),
        note: Some("line 1\nline 2"),
        role: Some(Some(role)),
        role_template: Some(false),
        funding: Some("own"),
        access_state: Some(2),
        password_hash: Some("new-hash"),
    };
    let record = subusers::update_seat(&mut tx, f.tenant, f.amy, &changes, T0_US + 7).await.unwrap().expect("the account");
    assert!(subusers::update_seat(&mut tx, f.tenant, f.stranger, &changes, T0_US).await.unwrap().is_none(), "{}: not ours", f.backend);
    let clash = subusers::update_seat(&mut tx, f.tenant, f.bob, &SeatChanges { phone: Some("13900000001"), ..SeatChanges::default() }, T0_US).await;
    assert!(matches!(clash, Err(StorageError::UniqueViolation { key: UniqueKey::AccountPhone, .. })), "{}: {clash:?}", f.backend);
    drop(tx);
    // The refused statement rolled the transaction back: write again.
    let mut tx = f.store.begin_write().await.unwrap();
    let role = roles::insert(&mut tx, f.tenant, "夜班坐席", 1, T0_US).await.unwrap();
    subusers::update_seat(&mut tx, f.tenant, f.amy, &SeatChanges { role: Some(Some(role)), ..changes.clone() }, T0_US + 7).await.unwrap();
    tx.commit().await.unwrap();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    assert_eq!(
        [text(&record.person_name), text(&record.job_number), text(&record.email), text(&record.phone), text(&record.department), text(&record.note), record.funding.clone()],
        ["王小明", "J-007", "amy@example.com", "13900000001", "support", "line 1\nline 2", "own"],
        "{}",
        f.backend
    );
    assert_eq!((record.extension, record.role_template, record.access_state, record.updated_at_us), (Some(8001), 0, 2, T0_US + 7), "{}", f.backend);
    let seat = subusers::get(&f.store, f.tenant, f.amy).await.unwrap().unwrap();
    assert_eq!((seat.account.role_id, seat.role_name.as_deref()), (Some(role.0), Some("夜班坐席")), "{}", f.backend);
    let login = subusers::login_state(&f.store, f.tenant, "amy_seat").await.unwrap().unwrap();
    assert_eq!(login.password_hash.as_deref(), Some("new-hash"), "{}", f.backend);
    // Taking the role away.
    let mut tx = f.store.begin_write().await.unwrap();
    let record = subusers::update_seat(&mut tx, f.tenant, f.amy, &SeatChanges { role: Some(None), ..SeatChanges::default() }, T0_US).await.unwrap().unwrap();
    assert_eq!((record.role_id, record.person_name.as_deref()), (None, Some("王小明")), "{}: other fields kept", f.backend);
    subusers::update_seat(&mut tx, f.tenant, f.amy, &SeatChanges { role: Some(Some(role)), ..SeatChanges::default() }, T0_US).await.unwrap();
    tx.commit().await.unwrap();

    let list = |query: SubUserQuery<'static>| {
        let store = f.store.clone();
        let tenant = f.tenant;
        async move { subusers::list(&store, tenant, &query, 0, 10).await.unwrap() }
    };
    let names = |(total, rows): (i64, Vec<subusers::SubUserRecord>)| (total, rows.into_iter().map(|r| r.account.username).collect::<Vec<_>>());
    assert_eq!(names(list(SubUserQuery::default()).await), (2, vec!["amy_seat".to_owned(), "bob_seat".to_owned()]), "{}", f.backend);
    for query in [
        SubUserQuery { person_name: Some("小明"), ..SubUserQuery::default() },
        SubUserQuery { role_name: Some("夜班"), ..SubUserQuery::default() },
        SubUserQuery { job_number: Some("J-007"), extension: Some(8001), access_state: Some(2), ..SubUserQuery::default() },
        SubUserQuery { id: Some(f.amy), username: Some("amy_seat"), ..SubUserQuery::default() },
    ] {
        assert_eq!(names(list(query.clone()).await), (1, vec!["amy_seat".to_owned()]), "{}: {query:?}", f.backend);
    }
    assert_eq!(names(list(SubUserQuery { id: Some(f.stranger), ..SubUserQuery::default() }).await), (0, vec![]), "{}", f.backend);
    assert_eq!(list(SubUserQuery::default()).await.0, 2);
    let page = subusers::list(&f.store, f.tenant, &SubUserQuery::default(), 1, 0).await.unwrap();
    assert_eq!((page.0, page.1.len()), (2, 0), "{}: a page of none still counts", f.backend);
    assert_eq!(subusers::existing(&f.store, f.tenant, &[f.bob, f.stranger, f.amy]).await.unwrap(), [f.amy, f.bob], "{}", f.backend);
}

async fn notices_round_trip(db: TestDb) {
    let f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    let everyone = notices::insert(&mut tx, f.tenant, "停机维护", "今晚 22:00\n维护", T0_US + 1).await.unwrap();
    let for_bob = notices::insert(&mut tx, f.tenant, "for bob", "content b", T0_US + 2).await.unwrap();
    notices::set_targets(&mut tx, for_bob, &[f.bob]).await.unwrap();
    let theirs = notices::insert(&mut tx, f.other, "theirs", "content c", T0_US + 3).await.unwrap();
    tx.commit().await.unwrap();

    let ids = |rows: Vec<notices::NoticeRecord>| rows.into_iter().map(|n| n.id).collect::<Vec<NoticeId>>();
    let all = notices::list(&f.store, f.tenant, &NoticeQuery::default(), 10).await.unwrap();
    assert_eq!(all[0].targets, [f.bob], "{}", f.backend);
    assert_eq!((all[1].title.as_str(), all[1].content.as_str(), all[1].created_at_us, all[1].tenant), ("停机维护", "今晚 22:00\n维护", T0_US + 1, f.tenant), "{}", f.backend);
    assert_eq!(ids(all), [for_bob, everyone], "{}: newest first", f.backend);
    let seen_by = |account| NoticeQuery { visible_to: Some(account), ..NoticeQuery::default() };
    assert_eq!(ids(notices::list(&f.store, f.tenant, &seen_by(f.amy), 10).await.unwrap()), [everyone], "{}", f.backend);
    assert_eq!(ids(notices::list(&f.store, f.tenant, &seen_by(f.bob), 10).await.unwrap()), [for_bob, everyone], "{}", f.backend);
    let titled = NoticeQuery { title: Some("维护"), ..NoticeQuery::default() };
    assert_eq!(ids(notices::list(&f.store, f.tenant, &titled, 10).await.unwrap()), [everyone], "{}", f.backend);
    let by_id = NoticeQuery { id: Some(theirs), ..NoticeQuery::default() };
    assert!(notices::list(&f.store, f.tenant, &by_id, 10).await.unwrap().is_empty(), "{}: another tenant's notice reads as missing", f.backend);
    assert_eq!(notices::list(&f.store, f.tenant, &NoticeQuery::default(), 1).await.unwrap().len(), 1, "{}: bounded", f.backend);

    let mut tx = f.store.begin_write().await.unwrap();
    assert!(notices::update(&mut tx, f.tenant, everyone, None, Some("new content"), T0_US + 9).await.unwrap(), "{}", f.backend);
    assert!(!notices::update(&mut tx, f.tenant, theirs, Some("x"), None, T0_US).await.unwrap(), "{}", f.backend);
    notices::set_targets(&mut tx, for_bob, &[f.amy, f.bob]).await.unwrap();
    assert!(!notices::delete(&mut tx, f.tenant, theirs).await.unwrap(), "{}", f.backend);
    assert!(notices::delete(&mut tx, f.tenant, everyone).await.unwrap(), "{}", f.backend);
    tx.commit().await.unwrap();
    let left = notices::list(&f.store, f.tenant, &NoticeQuery::default(), 10).await.unwrap();
    assert_eq!((left.len(), left[0].targets.clone()), (1, vec![f.amy, f.bob]), "{}", f.backend);
    assert_eq!(notices::list(&f.store, f.other, &NoticeQuery::default(), 10).await.unwrap().len(), 1, "{}", f.backend);
}
