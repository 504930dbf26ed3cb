-- The scheduler asks for the bindings due now on every pass.
CREATE INDEX rotation_bindings_due ON rotation_bindings(next_due);
