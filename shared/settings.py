"""One typed settings object, read from the environment, with developer-machine defaults."""

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The longest a process waits between two tries to reach PostgreSQL or RabbitMQ again: short enough that
#: every process is ready within 10 s of the server's return (SPEC §9), one try or two after it.
MAX_BACKOFF_SECONDS = 4.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = "postgresql://postgres@localhost:5432/contacts"
    # Without credentials in the URL pika falls back to its development defaults;
    # production sets AMQP_URL with a user and password of its own.
    amqp_url: str = "amqp://localhost:5672/%2F"

    create_reply_delay_seconds: float = Field(20.0, ge=0)
    max_body_bytes: int = 64 * 1024

    command_api_port: int = 8001
    command_api_workers: int = 2
    command_api_worker_connections: int = 12_000
    # Admission control (command_api.admission): writes one worker takes at a time; one more gets a 503 at once.
    # 128: about a second of a worker's work on a loaded 2-core machine, and a burst of 128 paced clients fits.
    command_api_max_writes_in_progress: int = Field(128, ge=1)
    relay_metrics_port: int = 8005

    db_pool_min_size: int = 2
    db_pool_max_size: int = 8
    db_statement_timeout_ms: int = 5_000
    db_pool_timeout_seconds: float = 5.0  # the longest a request waits for a connection before a 503

    relay_batch_size: int = Field(500, ge=1)
    relay_poll_seconds: float = 1.0
    relay_linger_seconds: float = Field(0.005, ge=0)  # between polls while events come, and after a wake-up
    relay_idle_seconds: float = Field(0.5, ge=0)  # without an event this long, wait for NOTIFY instead of polling
    relay_max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    outbox_retention_hours: float = 24.0
    idempotency_key_retention_hours: float = 24.0  # a retry with the same key within this time replays

    # command-api's consumer of `command-api.commands` (python -m command_api.consumer)
    command_consumer_port: int = 8006
    command_consumer_prefetch: int = Field(50, ge=1)
    command_consumer_max_backoff_seconds: float = MAX_BACKOFF_SECONDS

    # query-api (issue 3): its own URL so it can read from a replica, as a read-only role (README, "Roles")
    query_api_port: int = 8002
    query_api_workers: int = 2
    query_api_worker_connections: int = 1_000  # clients per worker; its reads share DB_POOL_MAX_SIZE connections
    query_database_url: str | None = None  # None: the same database as DATABASE_URL
    query_database_role: str | None = "contacts_reader"
    # Where query-api hears of signed-out sessions (LISTEN): a replica cannot LISTEN, so when QUERY_DATABASE_URL
    # names one, this names the primary (as the read-only role). None: the database it reads.
    query_identity_database_url: str | None = None
    # A read that sends a write's Consistency-Token back waits this long for a replica to replay it (SPEC §10).
    read_after_write_timeout_seconds: float = Field(2.0, ge=0, le=60)

    # history-worker (issue 3): records every event of `history-worker.events` as a version row
    history_worker_port: int = 8004
    history_batch_size: int = Field(500, ge=1)
    history_batch_wait_ms: float = Field(20.0, ge=0)
    history_max_backoff_seconds: float = MAX_BACKOFF_SECONDS

    # notifier (issue 4): WebSocket `/ws` and its HTTP probes on one port
    notifier_port: int = 8003
    # Browser origins allowed to open `/ws` (JSON list); a page served from the notifier's own host
    # and clients that send no Origin (not browsers) are always allowed.
    notifier_allowed_origins: list[str] = ["http://localhost:8080", "http://127.0.0.1:8080"]
    notifier_max_message_bytes: int = Field(4096, ge=256)
    notifier_ping_interval_seconds: float = Field(10.0, gt=0)  # with the timeout: a silent client gone in 20 s
    notifier_ping_timeout_seconds: float = Field(10.0, gt=0)
    notifier_close_timeout_seconds: float = Field(5.0, gt=0)
    notifier_client_buffer_bytes: int = Field(256 * 1024, ge=1024)  # unsent bytes that make a client too slow
    notifier_resume_events: int = Field(100_000, ge=1)  # recent events held for resuming clients
    notifier_max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    # presence (issue 18, SPEC §11): who is viewing or editing which contact, shared on `contacts.presence`.
    # Each instance re-announces its own every third of the TTL; an entry not re-announced within it is gone,
    # so a killed instance's users vanish within PRESENCE_TTL (a closed tab's at once, a silent one's once the
    # pings above go unanswered: within NOTIFIER_PING_INTERVAL + NOTIFIER_PING_TIMEOUT).
    notifier_presence_ttl_seconds: float = Field(20.0, gt=0, le=30)
    notifier_presence_max_contacts: int = Field(8, ge=1)  # contacts one connection may be present on at once
    notifier_presence_rate_per_second: float = Field(5.0, gt=0)  # presence messages per connection, sustained
    notifier_presence_burst: int = Field(20, ge=1)  # ... and in a burst

    # containers (issue 7): when set, `python -m shared.migrate` lets QUERY_DATABASE_ROLE log in with this
    # password, so query-api can connect as the read-only role itself (docker-compose.yml's QUERY_DATABASE_URL)
    query_database_password: SecretStr | None = None

    # identity (issue 17, SPEC §8): the first key signs tokens, every one verifies them, so a key rotates by
    # being put first, and the one it replaces is dropped once no token it signed can be alive. No default:
    # every process that checks tokens refuses to start without one (`make run` makes one for its run).
    identity_signing_keys: list[SecretStr] = Field(default_factory=list)
    access_token_seconds: int = Field(900, ge=1)  # a bearer token's life
    session_seconds: int = Field(43_200, ge=1)  # a session's, and its cookie's, life
    admin_username: str = "admin"  # the first admin, made when no user exists (command_api.accounts)
    admin_password: SecretStr | None = None  # None: a random one, shown once
    # The app's own origins: a write authenticated by the session cookie must come from one of them.
    app_origins: list[str] = ["http://localhost:8080", "http://127.0.0.1:8080"]

    log_level: str = "INFO"

    # limits (issue 17, SPEC §8): counted in PostgreSQL (shared.limits), so each holds across every instance
    # and worker; a window starts at a subject's first request and its count ends with it (a fixed window)
    sign_in_attempts_per_username: int = Field(10, ge=1)  # POST /api/session per username, per window
    sign_in_attempts_per_address: int = Field(30, ge=1)  # ... per client address, per window
    sign_in_window_seconds: int = Field(300, ge=1)
    writes_per_user: int = Field(300, ge=1)  # POST/PUT/PATCH/DELETE under /api/ but /api/session, per window
    writes_window_seconds: int = Field(60, ge=1)
    # The proxies in front of command-api that append the client's address to X-Forwarded-For (the gateway: 1);
    # the address a sign-in is counted under is the one the farthest of them saw. 0: the peer's own address.
    forwarded_for_hops: int = Field(1, ge=0)

    # imports (issue 18, SPEC §11): files up to IMPORT_MAX_BYTES and IMPORT_MAX_ROWS contacts, applied by
    # `python -m command_api.imports` in batches of IMPORT_BATCH_SIZE rows, each batch one transaction
    import_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    import_max_rows: int = Field(50_000, ge=1)
    import_batch_size: int = Field(500, ge=1)
    import_poll_seconds: float = Field(5.0, gt=0)  # besides NOTIFY imports, how often a worker looks for jobs
    import_max_attempts: int = Field(5, ge=1)  # claims of one job before it is ended `failed`
    import_max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    imports_port: int = 8007  # the worker's probes and metrics


@lru_cache
def get_settings() -> Settings:
    return Settings()
