//! Dogpile protection: the `Lock`, mutexes, and cache regions.
