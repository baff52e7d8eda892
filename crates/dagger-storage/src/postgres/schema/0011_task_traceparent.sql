-- The W3C trace context (`traceparent`) of the span that created a task,
-- restored as the parent of the span of the agent that runs it (NULL: the
-- task was created outside a traced span).
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
