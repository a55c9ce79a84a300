//! Console sessions: made at sign-in with the admin token, kept in memory (a restart signs
//! everyone out), ended by sign-out, by an hour unused or after twelve hours. Each has its own
//! CSRF token, which every state-changing request must carry in a header.
//!
//! The map is keyed by the SHA-256 of the session id, so finding a session compares no secret
//! byte by byte; the CSRF token is compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(3600);
/// A session is over this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; signing in past it ends the least recently used.
const MAX_SESSIONS: usize = 256;

/// The random part of ids and CSRF tokens, in bytes.
const RANDOM_BYTES: usize = 32;

struct Session {
    csrf: String,
    started: Instant,
    seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

/// A session just made: its id goes into the cookie.
pub struct NewSession {
    pub id: String,
}

/// The system's random source failed: no session can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("no random numbers from the operating system: {0}")]
pub struct NoRandom(String);

impl Sessions {
    pub fn start(&self, now: Instant) -> Result<NewSession, NoRandom> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.alive(now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let session = Session {
            csrf,
            started: now,
            seen: now,
        };
        sessions.insert(hash(&id), session);
        Ok(NewSession { id })
    }

    /// The live session `id` names, touched as used now: its CSRF token.
    pub fn find(&self, id: &str, now: Instant) -> Option<String> {
        let mut sessions = self.lock();
        let key = hash(id);
        let session = sessions.get_mut(&key)?;
        if !session.alive(now) {
            sessions.remove(&key);
            return None;
        }
        session.seen = now;
        Some(session.csrf.clone())
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(&hash(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.by_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Session {
    fn alive(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.seen) < IDLE
            && now.saturating_duration_since(self.started) < LIFETIME
    }
}

/// Whether `given` is the session's CSRF token, in constant time.
pub fn csrf_matches(expected: &str, given: &[u8]) -> bool {
    bool::from(expected.as_bytes().ct_eq(given))
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_hex() -> Result<String, NoRandom> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| NoRandom(e.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_until_it_ends_or_expires() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.start(t0).unwrap();
        let b = sessions.start(t0).unwrap();
        assert_ne!(a.id, b.id);
        let csrf = sessions.find(&a.id, t0).expect("a live session");
        assert_eq!(csrf.len(), 2 * RANDOM_BYTES);
        assert!(csrf_matches(&csrf, csrf.as_bytes()));
        assert!(!csrf_matches(&csrf, b"forged"));
        assert_ne!(sessions.find(&b.id, t0), Some(csrf));
        assert!(sessions.find("not-a-session", t0).is_none());
        sessions.end(&a.id);
        assert!(sessions.find(&a.id, t0).is_none());
        // Used just within the idle limit, again and again: alive until its lifetime ends.
        let mut now = t0;
        while now + IDLE / 2 < t0 + LIFETIME {
            now += IDLE / 2;
            assert!(sessions.find(&b.id, now).is_some());
        }
        assert!(sessions.find(&b.id, t0 + LIFETIME).is_none());
        let c = sessions.start(t0).unwrap();
        assert!(sessions.find(&c.id, t0 + IDLE).is_none());
    }

    #[test]
    fn signing_in_past_the_limit_ends_the_least_recently_used() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.start(t0).unwrap();
        for i in 1..MAX_SESSIONS {
            let later = t0 + Duration::from_millis(i as u64);
            sessions.start(later).unwrap();
        }
        let last = sessions.start(t0 + Duration::from_secs(1)).unwrap();
        assert!(sessions
            .find(&first.id, t0 + Duration::from_secs(1))
            .is_none());
        assert!(sessions
            .find(&last.id, t0 + Duration::from_secs(1))
            .is_some());
    }
}
