-- Change events of tenants' documents and collections (pg_ext/src/api/events.rs), read by the
-- gateway's one listening connection and streamed to subscribers (GET /v1/events). Nothing
-- here is granted to any role: the functions reach it as the owner.
--
-- An event's place in the feed is (xid, id): the writing transaction's id, then the order of
-- writing within it. The feed hands out an event only once every transaction with a lower xid
-- has ended, so an event never appears before one already handed out (ids alone are taken at
-- insert time and can commit out of order). Events carry ids, names and metadata, never
-- content. They are not dumped: transaction ids start again in a restored cluster.
CREATE TABLE @extschema@.events (
    xid         xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id   uuid NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL CHECK (kind IN ('document.created', 'document.deleted',
                                              'collection.created', 'collection.dropped')),
    collection  text NOT NULL,
    document_id uuid,
    metadata    jsonb,
    PRIMARY KEY (xid, id)
);
-- A subscriber resuming reads its own tenant's events only.
CREATE INDEX events_tenant ON @extschema@.events (tenant_id, xid, id);

-- How far the feed has been purged (sealstore.event_retention): a resume from before this
-- place has lost events and is refused.
CREATE TABLE @extschema@.event_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    xid      xid8 NOT NULL,
    id       bigint NOT NULL
);
INSERT INTO @extschema@.event_horizon VALUES (true, '0', 0);

REVOKE ALL ON @extschema@.events, @extschema@.event_horizon FROM PUBLIC;
-- Isolated like the other tenant tables (defence in depth: the owner, a superuser, bypasses it).
ALTER TABLE @extschema@.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.events FORCE ROW LEVEL SECURITY;
CREATE POLICY sealstore_tenant ON @extschema@.events FOR ALL TO PUBLIC
    USING (tenant_id = (SELECT @extschema@.current_tenant()))
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant()));
