-- migrate:up
CREATE TABLE orders (
  id          bigserial PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  total_cents integer NOT NULL CHECK (total_cents >= 0),
  status      text NOT NULL DEFAULT 'pending',
  created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada');
INSERT INTO orders (user_id, total_cents, status)
  SELECT id, 4200, 'paid' FROM users WHERE email = 'ada@example.com';

-- migrate:down
DROP TABLE orders;
DELETE FROM users WHERE email = 'ada@example.com';
