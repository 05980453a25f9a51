-- One database per service: run once by the postgres image on an empty volume.
CREATE DATABASE broker;
CREATE DATABASE ledger;
CREATE DATABASE bureau;
CREATE DATABASE bank;
