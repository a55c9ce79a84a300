//! `redis`: appends each envelope to a Redis stream (`XADD <stream> MAXLEN ~ <max_len> * id
//! <envelope id> envelope <json>`, and `traceparent <trace context>` when traces are on), the
//! stream key made from the sink's template. A script runs
//! per event and adds the entry only if the envelope id was not seen before (a key
//! `{<stream>}:seen:<id>` kept `dedupe_ttl`), so a redelivery is not a second entry. The seen
//! key and the stream share a Redis Cluster hash slot: the stream key holds no brace, so the
//! hash tag `{<stream>}` hashes exactly as the stream key does.
//!
//! One multiplexed connection, made on first use and made again after any error; a batch is
//! one pipeline of script calls.

mod config;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tokio::sync::Mutex;

pub use config::{RedisConfig, DEFAULT_DEDUPE_TTL, DEFAULT_MAX_LEN};

use super::{Delivery, Fields, Sink, SinkBuildError, SinkError, SinkFuture};
use crate::base::names::{SinkName, WorkspaceId};

/// Envelopes per pipeline.
const BATCH: usize = 64;

/// KEYS: the seen key, the stream. ARGV: seconds to remember the id, max_len, the envelope id,
/// the envelope, the traceparent (empty: none). The entry is added before the seen key is set: if XADD fails (a key of another
/// type, out of memory) the script stops there and the id is not marked seen, so the retry
/// adds it. Returns the entry id, or false for an id already seen.
const ADD_ONCE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local entry
if ARGV[5] == '' then
  entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'envelope', ARGV[4])
else
  entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'envelope', ARGV[4], 'traceparent', ARGV[5])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return entry
";

pub struct RedisSink {
    workspace: WorkspaceId,
    sink: SinkName,
    config: RedisConfig,
    client: Client,
    script: Script,
    /// `None` until first used, and again after an error.
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl RedisSink {
    /// Reads the URL; connects on the first delivery, so a server that is down does not hold
    /// up start-up.
    pub fn new(
        workspace: &WorkspaceId,
        sink: &SinkName,
        config: &RedisConfig,
    ) -> Result<RedisSink, SinkBuildError> {
        let client = Client::open(config.url.expose())
            .map_err(|e| SinkBuildError::Broker(format!("invalid redis URL: {e}")))?;
        tracing::info!(%workspace, %sink, url = %config.url.redacted(), stream = config.stream.as_str(), "redis sink ready");
        Ok(RedisSink {
            workspace: workspace.clone(),
            sink: sink.clone(),
            config: config.clone(),
            client,
            script: Script::new(ADD_ONCE),
            connection: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&settings)
            .await?;
        tracing::info!(workspace = %self.workspace, sink = %self.sink, url = %self.config.url.redacted(), "redis sink connected");
        *held = Some(connection.clone());
        Ok(connection)
    }

    /// Drops the connection so the next batch makes a new one.
    async fn forget_connection(&self) {
        self.connection.lock().await.take();
    }

    async fn add_all(&self, batch: &[Delivery<'_>]) -> Result<(), SinkError> {
        let ttl = self.config.dedupe_ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for delivery in batch {
            let fields = Fields::of_envelope(delivery.envelope)
                .map_err(|e| SinkError::Envelope(e.to_string()))?;
            let stream = self.config.stream.redis_key(&fields);
            let seen = format!("{{{stream}}}:seen:{}", delivery.event_id);
            pipe.cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(2)
                .arg(seen)
                .arg(stream)
                .arg(ttl)
                .arg(self.config.max_len)
                .arg(delivery.event_id)
                .arg(delivery.envelope)
                .arg(delivery.traceparent.unwrap_or_default());
        }
        let mut connection = self.connection().await.map_err(redis_error)?;
        let answers: Vec<Value> = match pipe.query_async(&mut connection).await {
            // A new server, or one whose script cache was flushed: load the script, go again.
            // Events the first pass added are seen by the second.
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script
                    .prepare_invoke()
                    .load_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                pipe.query_async(&mut connection)
                    .await
                    .map_err(redis_error)?
            }
            other => other.map_err(redis_error)?,
        };
        for (delivery, answer) in batch.iter().zip(&answers) {
            let added = !matches!(answer, Value::Nil | Value::Boolean(false));
            tracing::debug!(workspace = %self.workspace, sink = %self.sink, event_id = delivery.event_id, added, "redis stream entry");
        }
        Ok(())
    }
}

fn redis_error(error: RedisError) -> SinkError {
    SinkError::Request(format!("redis: {error}"))
}

impl Sink for RedisSink {
    fn max_batch(&self) -> usize {
        BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a> {
        Box::pin(async move {
            let result = tokio::time::timeout(self.config.timeout, self.add_all(batch))
                .await
                .unwrap_or(Err(SinkError::Timeout(self.config.timeout)));
            if matches!(result, Err(SinkError::Request(_) | SinkError::Timeout(_))) {
                // The connection may be broken or wedged: the next batch makes a new one.
                self.forget_connection().await;
            }
            result
        })
    }
}
