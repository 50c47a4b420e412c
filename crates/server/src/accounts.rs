//! Local accounts and web sessions, kept in the store like everything else (the server holds no
//! state of its own). A user (`auth/users/<name>.json`) belongs to one client with a role and
//! signs in with a password hashed with argon2id, or through OIDC. A session
//! (`auth/sessions/<hash prefix>.json`) is found by the SHA-256 of its random id, which only the
//! browser's cookie holds; it carries the CSRF token every form post must echo, and an expiry.
//! Failed sign-ins are rate limited in memory per user and address.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError};

/// What a user may see and do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and acts on every client.
    Admin,
    /// Sees and acts on its own client only.
    Member,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user {0} already exists")]
    Exists(Id),
    #[error("password must have at least {MIN_PASSWORD} characters")]
    WeakPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("email must be one address like name@example.com, without spaces (at most 254 characters)")]
    BadEmail,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// A local user as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: Id,
    pub client: Id,
    pub role: Role,
    /// PHC string of an argon2id hash; `None` for users who sign in only through OIDC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The OIDC `iss` and `sub` this user signs in as, when linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_subject: Option<String>,
    /// The e-mail address an admin recorded for single sign-on: the first OIDC sign-in whose ID
    /// token carries exactly this address with `email_verified` true links the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A random string of `n` characters from `[A-Za-z0-9]`.
pub fn random_token(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect()
}

fn hash_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn password_hash(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::WeakPassword);
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// The longest e-mail address.
pub const EMAIL_MAX: usize = 254;

/// An e-mail address as an admin records it for single sign-on: trimmed, one `@` with text on
/// both sides, no spaces or control characters. It is compared exactly, never normalized.
pub fn email_check(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim();
    let valid = email.len() <= EMAIL_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid { Ok(email.to_owned()) } else { Err(AccountError::BadEmail) }
}

/// Creates a user; `password` `None` makes a user who can only sign in through OIDC.
pub async fn user_create(
    store: &Store,
    name: &Id,
    client: &Id,
    role: Role,
    password: Option<&str>,
    oidc_subject: Option<String>,
) -> Result<UserRecord, AccountError> {
    user_create_with_email(store, name, client, role, password, oidc_subject, None).await
}

/// Creates a user, with the e-mail address its first single sign-on must prove (see
/// [`UserRecord::email`]).
pub async fn user_create_with_email(
    store: &Store,
    name: &Id,
    client: &Id,
    role: Role,
    password: Option<&str>,
    oidc_subject: Option<String>,
    email: Option<&str>,
) -> Result<UserRecord, AccountError> {
    let email = email.map(email_check).transpose()?;
    let password_hash = match password {
        Some(p) => Some(password_hash_bounded(p).await?),
        None => None,
    };
    let record = UserRecord {
        name: name.clone(),
        client: client.clone(),
        role,
        password_hash,
        oidc_subject,
        email,
        created_at: Utc::now(),
    };
    match store.put_json(&Key::record(Collection::Users, name), &record, PutCondition::Absent).await {
        Ok(_) => Ok(record),
        Err(StoreError::Conflict { .. }) => Err(AccountError::Exists(name.clone())),
        Err(e) => Err(e.into()),
    }
}

/// Account settings an admin changes at run time (`settings/auth.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuthSettings {
    /// Whether people may create their own account (each gets a client of their own). Off by default.
    #[serde(default)]
    pub signup: bool,
}

fn settings_key() -> Key {
    Key::record(Collection::Settings, &Id::parse("auth").expect("valid id"))
}

pub async fn settings_get(store: &Store) -> Result<AuthSettings, StoreError> {
    Ok(store.get_json::<AuthSettings>(&settings_key()).await?.map(|v| v.value).unwrap_or_default())
}

pub async fn settings_put(store: &Store, settings: &AuthSettings) -> Result<(), StoreError> {
    store.put_json(&settings_key(), settings, PutCondition::Overwrite).await.map(|_| ())
}

/// Signs up `name`: a new member of a new client of the same name. Refused when the user or
/// the client exists already (nobody joins someone else's client by signing up).
pub async fn signup(store: &Store, name: &Id, password: &str) -> Result<UserRecord, AccountError> {
    let client_taken =
        store.client_list().await?.contains(name) || user_list(store).await?.iter().any(|u| &u.client == name);
    if client_taken {
        return Err(AccountError::Exists(name.clone()));
    }
    user_create(store, name, name, Role::Member, Some(password), None).await
}

/// On a store without any user, creates the admin user `admin` of client `default` with a
/// generated password and returns that password (to print once).
pub async fn admin_user_bootstrap(store: &Store) -> Result<Option<String>, AccountError> {
    if !store.record_ids(Collection::Users).await?.is_empty() {
        return Ok(None);
    }
    let password = random_token(20);
    let (name, client) = (Id::parse("admin").expect("valid id"), Id::parse("default").expect("valid id"));
    match user_create(store, &name, &client, Role::Admin, Some(&password), None).await {
        Ok(_) => Ok(Some(password)),
        Err(AccountError::Exists(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn user_get(store: &Store, name: &Id) -> Result<Option<UserRecord>, StoreError> {
    Ok(store.get_json::<UserRecord>(&Key::record(Collection::Users, name)).await?.map(|v| v.value))
}

/// Every user, sorted by name.
pub async fn user_list(store: &Store) -> Result<Vec<UserRecord>, StoreError> {
    let mut out = Vec::new();
    for id in store.record_ids(Collection::Users).await? {
        if let Some(u) = user_get(store, &id).await? {
            out.push(u);
        }
    }
    Ok(out)
}

/// At most this many argon2 computations run at once, each on a blocking thread (never on the
/// async workers); more wait their turn, so a flood of sign-ins cannot take every core.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(hashing_limit()))
}

/// How many argon2 computations may run at once: the cores, between 1 and 8.
pub fn hashing_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8)
}

static HASHING_NOW: AtomicUsize = AtomicUsize::new(0);
static HASHING_PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most argon2 computations seen running at once since the process started.
pub fn hashing_peak() -> usize {
    HASHING_PEAK.load(Ordering::SeqCst)
}

/// Runs `work` (an argon2 hash or check) on a blocking thread once a permit is free.
async fn argon2_bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AccountError> {
    let _permit = hashing_permits().acquire().await.map_err(|e| AccountError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let now = HASHING_NOW.fetch_add(1, Ordering::SeqCst) + 1;
        HASHING_PEAK.fetch_max(now, Ordering::SeqCst);
        let out = work();
        HASHING_NOW.fetch_sub(1, Ordering::SeqCst);
        out
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))
}

/// [`password_hash`] off the async workers, within the bound on concurrent hashing.
async fn password_hash_bounded(password: &str) -> Result<String, AccountError> {
    let password = password.to_owned();
    argon2_bounded(move || password_hash(&password)).await?
}

/// The user with this name and password, `None` when either is wrong (same work either way).
pub async fn password_check(store: &Store, name: &str, password: &str) -> Result<Option<UserRecord>, StoreError> {
    let user = match Id::parse(name) {
        Ok(id) => user_get(store, &id).await?,
        Err(_) => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = password.to_owned();
    let ok = argon2_bounded(move || match stored {
        Some(stored) => {
            PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        }
        None => {
            // Spend the same time as a real check, so timing does not tell which users exist.
            let _ = password_hash("not-a-user-password");
            false
        }
    })
    .await
    .unwrap_or(false);
    Ok(user.filter(|_| ok))
}

/// A web session as stored: the hash of its id, never the id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub hash: String,
    pub user: Id,
    pub client: Id,
    pub role: Role,
    /// Echoed by every state-changing request made with the cookie.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "spawnit_session";

fn session_key(session_id: &str) -> Option<(String, Key)> {
    let hash = hash_hex(session_id);
    let id = Id::parse(hash.get(..40)?).ok()?;
    Some((hash, Key::record(Collection::Sessions, &id)))
}

/// Starts a session for `user`; returns the session id (for the cookie) and its record.
pub async fn session_create(store: &Store, user: &UserRecord) -> Result<(String, SessionRecord), StoreError> {
    let session_id = random_token(43);
    let (hash, key) = session_key(&session_id).expect("a SHA-256 hex digest has 64 digits");
    let now = Utc::now();
    let record = SessionRecord {
        hash,
        user: user.name.clone(),
        client: user.client.clone(),
        role: user.role,
        csrf: random_token(32),
        created_at: now,
        expires_at: now + chrono::Duration::from_std(SESSION_TTL).unwrap_or(chrono::Duration::hours(12)),
    };
    store.put_json(&key, &record, PutCondition::Absent).await?;
    Ok((session_id, record))
}

/// The live session of a cookie value, `None` when unknown or expired (an expired one is removed).
pub async fn session_get(store: &Store, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
    if session_id.is_empty() || session_id.len() > 200 {
        return Ok(None);
    }
    let Some((hash, key)) = session_key(session_id) else { return Ok(None) };
    let Some(record) = store.get_json::<SessionRecord>(&key).await?.map(|v| v.value) else { return Ok(None) };
    if record.hash != hash {
        return Ok(None);
    }
    if record.expires_at <= Utc::now() {
        store.delete(&key).await?;
        return Ok(None);
    }
    Ok(Some(record))
}

/// Removes expired sessions (best effort; a session is also checked for expiry at every use).
pub async fn sessions_prune(store: &Store) -> Result<usize, StoreError> {
    let now = Utc::now();
    records_prune::<SessionRecord>(store, Collection::Sessions, |session| session.expires_at <= now).await
}

/// Deletes the records of `collection` that are `stale` (and those that cannot be parsed);
/// returns how many.
async fn records_prune<T: serde::de::DeserializeOwned>(
    store: &Store,
    collection: Collection,
    stale: impl Fn(&T) -> bool,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for id in store.record_ids(collection).await? {
        let key = Key::record(collection, &id);
        let remove = match store.get_json::<T>(&key).await {
            Ok(Some(v)) => stale(&v.value),
            Ok(None) => false,
            Err(StoreError::Corrupt { .. }) => true,
            Err(e) => return Err(e),
        };
        if remove {
            store.delete(&key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Ends a session (signing out).
pub async fn session_delete(store: &Store, session_id: &str) -> Result<(), StoreError> {
    match session_key(session_id) {
        Some((_, key)) => store.delete(&key).await,
        None => Ok(()),
    }
}

/// Failed sign-ins: at most [`RateLimit::MAX`] per (user, address) and
/// [`RateLimit::MAX_PER_IP`] per address (whatever the user names) in [`RateLimit::WINDOW`].
/// It also tallies failures per address and minute, so the audit log gets one entry per
/// address and minute however many attempts come (see [`FailureTally`]).
///
/// The counts live in the store (`auth/sign-in-failures/`, one record per (user, address) and
/// one per address, updated with compare-and-swap), so replicas sharing the store share the
/// limit: a guesser spreading attempts over them is limited as if there were one.
#[derive(Clone)]
pub struct RateLimit {
    store: Store,
}

/// The failed sign-ins of one (user, address) or one address, as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FailureRecord {
    /// When the recent failures happened (those older than the window are dropped).
    times: Vec<DateTime<Utc>>,
    /// This minute's tally (per-address records only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tally: Option<FailureTally>,
}

/// The failed sign-ins of one address in one minute: what its one audit entry says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailureTally {
    /// The audit entry's id, the same for every failure of this address in this minute.
    pub entry_id: String,
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    pub count: u32,
    /// The distinct user names tried, at most [`FailureTally::USERS_KEPT`].
    pub users: Vec<String>,
}

impl FailureTally {
    pub const USERS_KEPT: usize = 10;
}

/// Compare-and-swap attempts of one failure record before giving up.
const FAILURE_WRITE_ATTEMPTS: usize = 10;

impl RateLimit {
    pub const MAX: usize = 5;
    pub const MAX_PER_IP: usize = 20;
    pub const WINDOW: Duration = Duration::from_secs(300);

    pub fn new(store: Store) -> RateLimit {
        RateLimit { store }
    }

    fn window() -> chrono::Duration {
        chrono::Duration::from_std(Self::WINDOW).unwrap_or(chrono::Duration::minutes(5))
    }

    fn key(what: &str) -> Key {
        let hash = hash_hex(what);
        let id = Id::parse(&hash[..40]).expect("40 hex digits are an id");
        Key::record(Collection::SignInFailures, &id)
    }

    fn user_key(user: &str, ip: IpAddr) -> Key {
        Self::key(&format!("user\0{user}\0{ip}"))
    }

    fn ip_key(ip: IpAddr) -> Key {
        Self::key(&format!("address\0{ip}"))
    }

    /// `Some(wait)` when this user or this address must wait before trying again.
    pub async fn blocked(&self, user: &str, ip: IpAddr) -> Result<Option<Duration>, StoreError> {
        let now = Utc::now();
        let wait = |record: Option<FailureRecord>, max: usize| {
            let recent: Vec<DateTime<Utc>> =
                record.map(|r| r.times).unwrap_or_default().into_iter().filter(|t| now - *t < Self::window()).collect();
            if recent.len() < max {
                return None;
            }
            recent.iter().min().map(|first| (*first + Self::window() - now).to_std().unwrap_or_default())
        };
        let by_user = self.store.get_json::<FailureRecord>(&Self::user_key(user, ip)).await?.map(|v| v.value);
        let by_ip = self.store.get_json::<FailureRecord>(&Self::ip_key(ip)).await?.map(|v| v.value);
        Ok(wait(by_user, Self::MAX).max(wait(by_ip, Self::MAX_PER_IP)))
    }

    /// Changes one failure record with compare-and-swap; returns it as written.
    async fn update(&self, key: &Key, change: impl Fn(&mut FailureRecord)) -> Result<FailureRecord, StoreError> {
        for _ in 0..FAILURE_WRITE_ATTEMPTS {
            let current = self.store.get_json::<FailureRecord>(key).await?;
            let (mut record, condition) = match current {
                Some(v) => (v.value, PutCondition::Matches(v.version)),
                None => (FailureRecord::default(), PutCondition::Absent),
            };
            let now = Utc::now();
            record.times.retain(|t| now - *t < Self::window());
            change(&mut record);
            match self.store.put_json(key, &record, condition).await {
                Ok(_) => return Ok(record),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict { key: key.to_string() })
    }

    /// Counts a failure of `user` from `ip`; returns this address's tally for the minute.
    pub async fn failed(&self, user: &str, ip: IpAddr) -> Result<FailureTally, StoreError> {
        let now = Utc::now();
        self.update(&Self::user_key(user, ip), |r| r.times.push(now)).await?;
        self.tally_update(user, ip, true).await
    }

    /// Counts a failed sign-in of `user` from `ip` in this address's tally of the minute only
    /// (an OIDC sign-in that failed at the provider's end, which guesses no password).
    pub async fn tally(&self, user: &str, ip: IpAddr) -> Result<FailureTally, StoreError> {
        self.tally_update(user, ip, false).await
    }

    async fn tally_update(&self, user: &str, ip: IpAddr, count_failure: bool) -> Result<FailureTally, StoreError> {
        let at = Utc::now();
        let minute = chrono::DurationRound::duration_trunc(at, chrono::TimeDelta::minutes(1)).unwrap_or(at);
        let who: String = user.chars().take(64).collect();
        let entry_id = format!("{}-{}", minute.format("%Y%m%d-%H%M%S-000000"), random_token(8).to_ascii_lowercase());
        let record = self
            .update(&Self::ip_key(ip), |r| {
                if count_failure {
                    r.times.push(at);
                }
                let tally = match r.tally.take() {
                    Some(t) if t.minute == minute => t,
                    _ => FailureTally { entry_id: entry_id.clone(), minute, count: 0, users: Vec::new() },
                };
                let mut tally = tally;
                tally.count += 1;
                if tally.users.len() < FailureTally::USERS_KEPT && !tally.users.contains(&who) {
                    tally.users.push(who.clone());
                }
                r.tally = Some(tally);
            })
            .await?;
        Ok(record.tally.expect("the update sets the tally"))
    }

    /// A successful sign-in forgets the user's failures from that address.
    pub async fn succeeded(&self, user: &str, ip: IpAddr) -> Result<(), StoreError> {
        self.store.delete(&Self::user_key(user, ip)).await
    }

    /// Deletes the records whose failures and tally are all older than the window; returns
    /// how many.
    pub async fn prune(store: &Store) -> Result<usize, StoreError> {
        let now = Utc::now();
        records_prune::<FailureRecord>(store, Collection::SignInFailures, |r| {
            r.times.iter().all(|t| now - *t >= Self::window())
                && r.tally.as_ref().is_none_or(|t| now - t.minute >= Self::window())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = password_hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
        assert!(matches!(password_hash("short"), Err(AccountError::WeakPassword)));
    }

    #[tokio::test]
    async fn sessions_expire_and_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_local(dir.path()).unwrap();
        let (name, client) = (Id::parse("ann").unwrap(), Id::parse("acme").unwrap());
        let user = user_create(&store, &name, &client, Role::Member, Some("long enough"), None).await.unwrap();
        let (live_id, _) = session_create(&store, &user).await.unwrap();
        let (old_id, mut old) = session_create(&store, &user).await.unwrap();
        assert!(session_get(&store, &old_id).await.unwrap().is_some());
        old.expires_at = Utc::now() - chrono::Duration::seconds(1);
        let (_, key) = session_key(&old_id).unwrap();
        store.put_json(&key, &old, PutCondition::Overwrite).await.unwrap();
        assert!(session_get(&store, &old_id).await.unwrap().is_none(), "an expired session works");
        store.put_json(&key, &old, PutCondition::Overwrite).await.unwrap();
        assert_eq!(sessions_prune(&store).await.unwrap(), 1);
        assert!(session_get(&store, &live_id).await.unwrap().is_some());
        assert!(session_get(&store, "not-a-session").await.unwrap().is_none());
        session_delete(&store, &live_id).await.unwrap();
        assert!(session_get(&store, &live_id).await.unwrap().is_none());
    }

    /// A rate limit on a real store in a temporary directory (`dir` must outlive it).
    fn rate_limit(dir: &tempfile::TempDir) -> RateLimit {
        RateLimit::new(Store::open_local(dir.path()).unwrap())
    }

    #[tokio::test]
    async fn rate_limit_blocks_after_five_failures() {
        let dir = tempfile::tempdir().unwrap();
        let rl = rate_limit(&dir);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..RateLimit::MAX {
            assert!(rl.blocked("bob", ip).await.unwrap().is_none());
            rl.failed("bob", ip).await.unwrap();
        }
        assert!(rl.blocked("bob", ip).await.unwrap().is_some());
        assert!(rl.blocked("alice", ip).await.unwrap().is_none());
        // Another handle on the same store (another replica) sees the same failures.
        assert!(rate_limit(&dir).blocked("bob", ip).await.unwrap().is_some());
        rl.succeeded("bob", ip).await.unwrap();
        assert!(rl.blocked("bob", ip).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rate_limit_blocks_an_address_that_varies_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let rl = rate_limit(&dir);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut entry = None;
        for i in 0..RateLimit::MAX_PER_IP {
            assert!(rl.blocked(&format!("user{i}"), ip).await.unwrap().is_none(), "blocked after {i} failures");
            let tally = rl.failed(&format!("user{i}"), ip).await.unwrap();
            assert!(tally.count >= 1 && tally.users.len() <= FailureTally::USERS_KEPT);
            // One audit entry per address and minute (a new minute may start during the loop).
            if tally.count > 1 {
                assert_eq!(entry.as_ref(), Some(&tally.entry_id), "the minute's entry changed");
            }
            entry = Some(tally.entry_id);
        }
        assert!(
            rl.blocked("someone-new", ip).await.unwrap().is_some(),
            "a new user name bypasses the per-address limit"
        );
        assert!(rl.blocked("someone-new", other).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_checks_run_off_the_workers_a_bounded_number_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_local(dir.path()).unwrap();
        let (name, client) = (Id::parse("hal").unwrap(), Id::parse("acme").unwrap());
        user_create(&store, &name, &client, Role::Member, Some("long enough"), None).await.unwrap();
        let checks: Vec<_> = (0..hashing_limit() * 3)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let password = if i % 2 == 0 { "long enough" } else { "wrong" };
                    password_check(&store, "hal", password).await.unwrap().is_some()
                })
            })
            .collect();
        let mut right = 0;
        for c in checks {
            right += usize::from(c.await.unwrap());
        }
        assert_eq!(right, (hashing_limit() * 3).div_ceil(2), "the right password must still be accepted");
        assert!(hashing_peak() >= 1, "no hashing was counted");
        assert!(
            hashing_peak() <= hashing_limit(),
            "{} hashes ran at once, more than {}",
            hashing_peak(),
            hashing_limit()
        );
    }
}
