//! The toolkit below every stage: nothing here knows about tags, stores or
//! scripts. [`text`] is how an outside value is shown to people.

pub mod text;
