-- The newest wfc schema for a new SQLite file, dumped from a file the migrations made.
-- Written by `python -m wfc.runtime.adapters.sql.sqlite_schema_dump`; do not edit by hand.
CREATE TABLE ai_calls (
	position INTEGER NOT NULL, 
	id VARCHAR(64) NOT NULL, 
	topic VARCHAR(500) NOT NULL, 
	call_type VARCHAR(16) NOT NULL, 
	model_key VARCHAR(200) NOT NULL, 
	model_id VARCHAR(200) NOT NULL, 
	prompt TEXT NOT NULL, 
	response TEXT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cost FLOAT NOT NULL, 
	created_at DATETIME NOT NULL, 
	metadata JSON NOT NULL, 
	batch_id VARCHAR(200), 
	CONSTRAINT pk_ai_calls PRIMARY KEY (position), 
	CONSTRAINT uq_ai_calls_id UNIQUE (id)
);
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0018');
CREATE TABLE "blobs" ("key" VARCHAR(1000) NOT NULL, data BLOB NOT NULL, CONSTRAINT pk_blobs PRIMARY KEY ("key")) WITHOUT ROWID;
CREATE TABLE idempotency_keys (
	"key" VARCHAR(400) NOT NULL, 
	command_type VARCHAR(64) NOT NULL, 
	started_at DATETIME NOT NULL, 
	result JSON, 
	CONSTRAINT pk_idempotency_keys PRIMARY KEY ("key", command_type)
);
CREATE TABLE items (
	id VARCHAR(64) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	stage_id VARCHAR(200) NOT NULL, 
	item_index INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	version INTEGER DEFAULT 1 NOT NULL, 
	generation INTEGER DEFAULT 0 NOT NULL, 
	attempt INTEGER DEFAULT 0 NOT NULL, 
	started_at DATETIME, 
	completed_at DATETIME, 
	duration_ms BIGINT, 
	output JSON, 
	error TEXT, 
	metrics JSON NOT NULL, 
	suspended_state JSON, 
	next_poll_at DATETIME, 
	poll_interval_ms BIGINT, 
	max_wait_until DATETIME, 
	CONSTRAINT fk_items_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE, 
	CONSTRAINT pk_items PRIMARY KEY (id), 
	CONSTRAINT uq_items_run_id_stage_id_item_index UNIQUE (run_id, stage_id, item_index)
);
CREATE TABLE jobs (
	position INTEGER NOT NULL, 
	id VARCHAR(64) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	stage_id VARCHAR(200) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	priority INTEGER NOT NULL, 
	attempt INTEGER DEFAULT 0 NOT NULL, 
	max_attempts INTEGER NOT NULL, 
	payload JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	run_at DATETIME, 
	worker_id VARCHAR(200), 
	locked_at DATETIME, 
	started_at DATETIME, 
	completed_at DATETIME, 
	last_error TEXT, plan_fingerprint VARCHAR(80), queue VARCHAR(100) DEFAULT 'default' NOT NULL, concurrency_key VARCHAR(400), concurrency_max INTEGER, rate_key VARCHAR(400), rate_max INTEGER, rate_window_ms INTEGER, 
	CONSTRAINT pk_jobs PRIMARY KEY (position), 
	CONSTRAINT uq_jobs_id UNIQUE (id)
);
CREATE TABLE limit_locks (
	"key" VARCHAR(400) NOT NULL, 
	max_override INTEGER, 
	CONSTRAINT pk_limit_locks PRIMARY KEY ("key")
);
CREATE TABLE logs (
	position INTEGER NOT NULL, 
	id VARCHAR(64) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	stage_record_id VARCHAR(64), 
	level VARCHAR(8) NOT NULL, 
	message TEXT NOT NULL, 
	fields JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT fk_logs_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE, 
	CONSTRAINT pk_logs PRIMARY KEY (position), 
	CONSTRAINT uq_logs_id UNIQUE (id)
);
CREATE TABLE "outbox" (position INTEGER NOT NULL, id TEXT, run_id VARCHAR(64) NOT NULL, sequence INTEGER NOT NULL, event_type VARCHAR(64) NOT NULL, payload JSON NOT NULL, causation_id VARCHAR(200) NOT NULL, occurred_at DATETIME NOT NULL, published_at DATETIME, retry_count INTEGER DEFAULT 0 NOT NULL, dlq_at DATETIME, CONSTRAINT pk_outbox PRIMARY KEY (position), CONSTRAINT uq_outbox_run_id_sequence UNIQUE (run_id, sequence));
CREATE TABLE plans (
	fingerprint VARCHAR(80) NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	workflow_name VARCHAR(200) NOT NULL, 
	"plan" TEXT NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	CONSTRAINT pk_plans PRIMARY KEY (fingerprint)
);
CREATE TABLE rate_starts (
	id INTEGER NOT NULL, 
	"key" VARCHAR(400) NOT NULL, 
	started_at DATETIME NOT NULL, 
	CONSTRAINT pk_rate_starts PRIMARY KEY (id)
);
CREATE TABLE "runs" (
	id VARCHAR(64) NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	workflow_name VARCHAR(200) NOT NULL, 
	plan_fingerprint VARCHAR(80) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	input JSON NOT NULL, 
	config JSON NOT NULL, 
	priority INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	version INTEGER DEFAULT 1 NOT NULL, 
	started_at DATETIME, 
	completed_at DATETIME, 
	duration_ms BIGINT, 
	output JSON, 
	error JSON, 
	total_cost FLOAT DEFAULT 0 NOT NULL, 
	total_tokens BIGINT DEFAULT 0 NOT NULL, 
	metadata JSON, 
	last_sequence INTEGER DEFAULT 0 NOT NULL, parent_run_id VARCHAR(64), parent_stage_id VARCHAR(200), trace_context VARCHAR(64), 
	CONSTRAINT pk_runs PRIMARY KEY (id)
);
CREATE TABLE schedules (
	id VARCHAR(64) NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	cron VARCHAR(200) NOT NULL, 
	timezone VARCHAR(64) NOT NULL, 
	input JSON NOT NULL, 
	catch_up VARCHAR(16) NOT NULL, 
	overlap VARCHAR(16) NOT NULL, 
	paused BOOLEAN DEFAULT 0 NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	next_due_at DATETIME NOT NULL, 
	last_tick_at DATETIME, 
	last_run_id VARCHAR(64), 
	last_outcome TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_schedules PRIMARY KEY (id), 
	CONSTRAINT uq_schedules_workflow_id_name UNIQUE (workflow_id, name)
);
CREATE TABLE signals (
	sequence INTEGER NOT NULL, 
	id VARCHAR(64) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	idempotency_key VARCHAR(200) NOT NULL, 
	payload JSON, 
	sent_at DATETIME NOT NULL, 
	consumed_at DATETIME, 
	consumed_by VARCHAR(64), 
	CONSTRAINT fk_signals_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE, 
	CONSTRAINT pk_signals PRIMARY KEY (sequence), 
	CONSTRAINT uq_signals_id UNIQUE (id), 
	CONSTRAINT uq_signals_run_id_idempotency_key UNIQUE (run_id, idempotency_key)
);
CREATE TABLE "stages" (
	id VARCHAR(64) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	stage_id VARCHAR(200) NOT NULL, 
	stage_name VARCHAR(200) NOT NULL, 
	stage_number INTEGER NOT NULL, 
	execution_group INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	config JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	version INTEGER DEFAULT 1 NOT NULL, 
	generation INTEGER DEFAULT 0 NOT NULL, 
	attempt INTEGER DEFAULT 0 NOT NULL, 
	started_at DATETIME, 
	completed_at DATETIME, 
	duration_ms BIGINT, 
	output_ref TEXT, 
	suspended_state JSON, 
	next_poll_at DATETIME, 
	poll_interval_ms BIGINT, 
	max_wait_until DATETIME, 
	metrics JSON NOT NULL, 
	error TEXT, 
	items_total INTEGER DEFAULT 0 NOT NULL, 
	items_queued INTEGER DEFAULT 0 NOT NULL, 
	items_next INTEGER DEFAULT 0 NOT NULL, 
	items_done INTEGER DEFAULT 0 NOT NULL, 
	items_failed INTEGER DEFAULT 0 NOT NULL, 
	CONSTRAINT fk_stages_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE, 
	CONSTRAINT pk_stages PRIMARY KEY (id), 
	CONSTRAINT uq_stages_run_id_stage_id UNIQUE (run_id, stage_id)
);
CREATE TABLE workers (
	worker_id VARCHAR(200) NOT NULL, 
	plans JSON NOT NULL, 
	started_at DATETIME NOT NULL, 
	seen_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, queues JSON, 
	CONSTRAINT pk_workers PRIMARY KEY (worker_id)
);
CREATE INDEX ix_ai_calls_batch_id ON ai_calls (batch_id);
CREATE INDEX ix_ai_calls_topic ON ai_calls (topic);
CREATE INDEX ix_jobs_leased ON jobs (locked_at) WHERE status = 'RUNNING';
CREATE INDEX ix_jobs_run_id ON jobs (run_id);
CREATE INDEX ix_logs_run_id_position ON logs (run_id, position);
CREATE INDEX ix_runs_workflow_id_created_at ON runs (workflow_id, created_at);
CREATE INDEX ix_jobs_running_by_concurrency_key ON jobs (concurrency_key) WHERE status = 'RUNNING' AND concurrency_key IS NOT NULL;
CREATE INDEX ix_rate_starts_key_started_at ON rate_starts ("key", started_at);
CREATE INDEX ix_schedules_next_due_at ON schedules (next_due_at);
CREATE INDEX ix_runs_created_at_id ON runs (created_at, id);
CREATE INDEX ix_signals_run_id_name_sequence ON signals (run_id, name, sequence);
CREATE INDEX ix_runs_status_created_at_id ON runs (status, created_at, id);
CREATE INDEX ix_runs_status_completed_at ON runs (status, completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX ix_runs_parent_run_id ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX ix_jobs_dequeue ON jobs (priority DESC, position) WHERE status = 'PENDING';
CREATE INDEX ix_stages_suspended ON stages (next_poll_at, id) WHERE status = 'SUSPENDED';
CREATE INDEX ix_items_suspended ON items (next_poll_at, id) WHERE status = 'SUSPENDED';
CREATE INDEX ix_runs_status_claim_order ON runs (status, priority DESC, created_at, id) WHERE status = 'PENDING';
CREATE INDEX ix_outbox_unpublished ON outbox (position) WHERE published_at IS NULL AND dlq_at IS NULL;
