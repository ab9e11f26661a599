//! Password checks (argon2id, RFC 9106) on a fixed pool of worker threads.
//! Each worker allocates its argon2 memory once (19 MiB with the default
//! parameters) and reuses it, so memory is bounded by workers × m whatever
//! the number of failed logins; jobs wait in a bounded queue, and past it a
//! login is refused as busy instead of waiting without bound. The token
//! path never waits on this pool; introspection does only for a user caller
//! whose credentials are not remembered ([`crate::oauth::user_caller`]).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use crate::users::{User, Users};

/// A password check that did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The queue is full: retry shortly.
    #[error("too many sign-ins are being checked; retry shortly")]
    Busy,
    /// The pool has stopped (the server is shutting down).
    #[error("password checking has stopped")]
    Stopped,
}

struct Job {
    users: Arc<Users>,
    username: String,
    password: String,
    reply: tokio::sync::oneshot::Sender<Option<Arc<User>>>,
}

/// The worker pool.
#[derive(Debug)]
pub struct HashPool {
    jobs: SyncSender<Job>,
    workers: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job(..)")
    }
}

impl HashPool {
    /// Starts `workers` threads checking passwords, with room for `queue`
    /// waiting checks.
    pub fn start(workers: usize, queue: usize) -> Result<Self, String> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("certbound-hash-{i}"))
                .spawn(move || work(&rx))
                .map_err(|e| format!("cannot start a password-hashing thread: {e}"))?;
        }
        Ok(Self { jobs, workers })
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Checks a password of one of `users` (the settings the request
    /// began with) on the pool: the user if it matches.
    pub async fn verify(
        &self,
        users: Arc<Users>,
        username: &str,
        password: &str,
    ) -> Result<Option<Arc<User>>, HashError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            users,
            username: username.to_string(),
            password: password.to_string(),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HashError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(HashError::Stopped),
        }
        answer.await.map_err(|_| HashError::Stopped)
    }
}

/// A worker: takes jobs until the pool is dropped, with one argon2 memory
/// buffer for its whole life.
fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            rx.recv()
        };
        let Ok(job) = job else { return };
        // The client left while the job waited: its attempt was released,
        // so hashing for it now would escape the in-flight caps.
        if job.reply.is_closed() {
            continue;
        }
        let user = job.users.verify(&job.username, &job.password, &mut memory);
        let _ = job.reply.send(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;

    #[tokio::test]
    async fn checks_run_and_a_full_queue_is_busy() {
        let users = Users::new(
            &[UserConfig {
                username: "a".into(),
                password_hash: crate::users::hash_password("pw").unwrap(),
                ..Default::default()
            }],
            None,
        )
        .unwrap();
        let users = Arc::new(users);
        let pool = Arc::new(HashPool::start(1, 2).unwrap());
        assert!(
            pool.verify(users.clone(), "a", "pw")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            pool.verify(users.clone(), "a", "no")
                .await
                .unwrap()
                .is_none()
        );
        // One running, two queued: a burst of ten has some refused as busy.
        let burst: Vec<_> = (0..10)
            .map(|_| {
                let (pool, users) = (pool.clone(), users.clone());
                tokio::spawn(async move { pool.verify(users, "a", "no").await })
            })
            .collect();
        let mut busy = 0;
        for task in burst {
            match task.await.unwrap() {
                Err(HashError::Busy) => busy += 1,
                Ok(user) => assert!(user.is_none()),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 5, "{busy} of 10 refused");
    }
}
