-- Run once by the postgres image on an empty data volume, after POSTGRES_DB (Dagster's database)
-- is created: the market memory gets a database of its own (MARKET_DB); the memory creates its
-- tables on first connect.
CREATE DATABASE market;
