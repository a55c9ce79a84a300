//! placeholder while config is written
