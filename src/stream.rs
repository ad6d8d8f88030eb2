//! Streaming calls, shared by every runtime: the items a host feeds into a
//! plugin's `Stream<T>` argument (client and bidirectional streams), and the
//! output stream a caller pulls items from (server and bidirectional).
//!
//! Items always cross as Fidius wire bytes (the bincode of one `T`) at this
//! level; the JSON form, where the item type is known, is `plugin.rs`'s job.

use std::sync::Mutex;

use crate::error::{Error, Result};

/// What a streaming call is; the caller says which, since a native
/// descriptor cannot (only its interface hash covers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `fn m(..) -> Stream<T>`: the plugin produces items.
    Server,
    /// `fn m(.., Stream<T>) -> R`: the host feeds items, the plugin returns one result.
    Client,
    /// `fn m(.., Stream<In>) -> Stream<Out>`: both.
    Bidi,
}

/// The items a host feeds into a plugin's `Stream<T>` argument.
pub trait ItemSource: Send {
    /// The next item's wire bytes; `None` at the end; an error ends the
    /// plugin's input there and fails the call with it.
    fn next(&mut self) -> Result<Option<Vec<u8>>>;
}

/// A host's source as the runtimes pull it: once it has ended or failed it
/// answers the end for ever, and its failure is kept for the call to report.
/// The source itself is dropped (a C source's destroy callback runs) as soon
/// as the plugin lets go of its input, or the feed goes.
pub struct Feed {
    state: Mutex<FeedState>,
}

struct FeedState {
    source: Option<Box<dyn ItemSource>>,
    failure: Option<Error>,
}

impl Feed {
    pub fn new(source: Box<dyn ItemSource>) -> Feed {
        Feed { state: Mutex::new(FeedState { source: Some(source), failure: None }) }
    }

    /// The next item for the plugin, or `None` (its input has ended).
    pub fn pull(&self) -> Option<Vec<u8>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let source = state.source.as_mut()?;
        // A panicking Rust source is a failure of the source, never an unwind
        // through the plugin's frames.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.next()))
            .unwrap_or_else(|p| Err(crate::error::Error::new(crate::error::Status::InternalPanic, panic_text(&p))));
        match step {
            Ok(Some(item)) => Some(item),
            Ok(None) => {
                state.source = None;
                None
            }
            Err(e) => {
                state.source = None;
                state.failure = Some(e);
                None
            }
        }
    }

    /// The plugin let go of its input: release the source now.
    pub fn close(&self) {
        let source = self.state.lock().unwrap_or_else(|p| p.into_inner()).source.take();
        drop(source);
    }

    /// The source's failure, if it had one (taken: reported once).
    pub fn take_failure(&self) -> Option<Error> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).failure.take()
    }
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("the stream source panicked: {what}")
}

/// An output stream of one runtime: wire bytes per item.
pub(crate) trait ItemStream: Send {
    /// The next item's wire bytes; `None` at the end.
    fn next(&mut self) -> Result<Option<Vec<u8>>>;
}

/// A call's result when it also fed a source: the source's failure wins,
/// since the plugin only saw its input end early.
pub(crate) fn with_feed<T>(result: Result<T>, feed: &Feed) -> Result<T> {
    match feed.take_failure() {
        Some(failure) => Err(failure),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;

    struct Items(Vec<Result<Option<Vec<u8>>>>);
    impl ItemSource for Items {
        fn next(&mut self) -> Result<Option<Vec<u8>>> {
            if self.0.is_empty() {
                return Ok(None);
            }
            self.0.remove(0)
        }
    }

    #[test]
    fn a_feed_ends_for_ever_and_keeps_the_failure() {
        let feed = Feed::new(Box::new(Items(vec![Ok(Some(vec![1])), Err(Error::new(Status::StreamSource, "no")), Ok(Some(vec![2]))])));
        assert_eq!(feed.pull(), Some(vec![1]));
        assert_eq!(feed.pull(), None);
        assert_eq!(feed.pull(), None, "ended: the item after the failure is never pulled");
        let failure = with_feed(Ok(()), &feed).unwrap_err();
        assert_eq!(failure.status, Status::StreamSource);
        assert!(with_feed(Ok(()), &feed).is_ok(), "reported once");
    }

    #[test]
    fn a_panicking_source_is_a_failure() {
        struct Bad;
        impl ItemSource for Bad {
            fn next(&mut self) -> Result<Option<Vec<u8>>> {
                panic!("bad source")
            }
        }
        let feed = Feed::new(Box::new(Bad));
        assert_eq!(feed.pull(), None);
        let failure = feed.take_failure().unwrap();
        assert_eq!(failure.status, Status::InternalPanic);
        assert!(failure.message.contains("bad source"));
    }
}
