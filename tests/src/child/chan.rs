//! Roles over the channel API of issue 13: typed queues, `Select` and the async API. Each
//! takes the segment's name first.

use std::process::ExitCode;
use std::time::Duration;

use shmq::{End, OpenError, PipeEnd, PodQueue, Queue, SerdeQueue, TypedPutError};

use crate::shared::Order;
use crate::{arg, say};

/// Runs a channel role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    let name = args.first().map(String::as_str).unwrap_or("");
    Some(match role {
        // put COUNT orders (id i) on a SerdeQueue<Order>, then close it
        "c-serde-producer" => {
            let q = SerdeQueue::<Order>::open(name).expect("open typed");
            let count: u32 = arg(args, 1);
            for i in 0..count {
                q.put(Order::sample(i)).expect("put");
            }
            q.queue().close().expect("close");
            ExitCode::SUCCESS
        }
        // open the queue as PodQueue<u64>, PodQueue<u32> and SerdeQueue<Order>; print one line
        // each: "ok" or "incompatible"
        "c-open-as" => {
            let line = |r: Result<(), OpenError>| match r {
                Ok(()) => "ok".to_string(),
                Err(OpenError::Incompatible(_)) => "incompatible".to_string(),
                Err(e) => format!("other: {e}"),
            };
            say(line(PodQueue::<u64>::open(name).map(drop)));
            say(line(PodQueue::<u32>::open(name).map(drop)));
            say(line(SerdeQueue::<Order>::open(name).map(drop)));
            ExitCode::SUCCESS
        }
        // put u64 values 0..COUNT, with the raw bytes "bad" (not a u64) at position BAD
        "c-pod-with-garbage" => {
            let q = PodQueue::<u64>::open(name).expect("open typed");
            let (count, bad): (u64, u64) = (arg(args, 1), arg(args, 2));
            for i in 0..count {
                if i == bad {
                    q.queue().put(b"bad").expect("put raw");
                } else {
                    q.put(i).expect("put");
                }
            }
            ExitCode::SUCCESS
        }
        // sleep MS, then put "go" on the queue
        "c-put-after" => {
            let q = Queue::open(name).expect("open");
            std::thread::sleep(Duration::from_millis(arg(args, 1)));
            q.put(b"go").expect("put");
            ExitCode::SUCCESS
        }
        // hold end B of the pipe; sleep MS, send "hello", print "sent", then sleep forever (the
        // parent kills us)
        "c-pipe-send-then-hang" => {
            let p = PipeEnd::open(name, End::B).expect("open pipe");
            say("ready");
            std::thread::sleep(Duration::from_millis(arg(args, 1)));
            p.send(b"hello").expect("send");
            say("sent");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        // an async producer on a multi-thread tokio runtime: put_async u64 0..COUNT, each
        // under a timeout of a few microseconds first (a cancelled put takes no slot; the value
        // is put again), then close
        "c-async-producer" => {
            let q = PodQueue::<u64>::open(name).expect("open typed");
            let count: u64 = arg(args, 1);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let cancelled = rt.block_on(async {
                let mut cancelled = 0u64;
                for i in 0..count {
                    loop {
                        let t = Duration::from_micros(if i % 3 == 0 { 1 } else { 200 });
                        match tokio::time::timeout(t, q.put_async(i)).await {
                            Ok(Ok(())) => break,
                            Ok(Err(TypedPutError::Queue(e))) => panic!("put_async: {e}"),
                            Ok(Err(e)) => panic!("put_async: {e}"),
                            Err(_) => cancelled += 1,
                        }
                    }
                }
                cancelled
            });
            q.queue().close().expect("close");
            say(format!("cancelled {cancelled}"));
            ExitCode::SUCCESS
        }
        // c-async-fork NAME: uses the async API here (a get_async on the empty PodQueue<u64>,
        // pending when its timeout cancels it, so this process's notifier thread runs), then
        // forks. The forked child gets with get_async on a new runtime: it prints "waiting"
        // once that get is pending, then "got V" when the value V that the test puts wakes it
        // (or "lost" after 20 s). The parent waits for the child and prints "child N", N its
        // exit status.
        "c-async-fork" => {
            let q: &'static PodQueue<u64> =
                Box::leak(Box::new(PodQueue::<u64>::open(name).expect("open typed")));
            let runtime = || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
            };
            let rt = runtime();
            let early = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(20), q.get_async()).await
            });
            assert!(early.is_err(), "a get on an empty queue returned {early:?}");
            drop(rt);
            match crate::pipe::fork() {
                None => {
                    let got = runtime().block_on(async {
                        let get = tokio::spawn(q.get_async());
                        // The spawned get runs during this sleep: it finds the queue empty
                        // and registers with the notifier before "waiting" is printed.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        say("waiting");
                        tokio::time::timeout(Duration::from_secs(20), get).await
                    });
                    match got {
                        Ok(Ok(Ok(v))) => {
                            say(format!("got {v}"));
                            crate::pipe::exit_child(0)
                        }
                        _ => {
                            say("lost");
                            crate::pipe::exit_child(1)
                        }
                    }
                }
                Some(pid) => {
                    let pid = rustix::process::Pid::from_raw(pid as i32).expect("child pid");
                    let status =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                            .expect("waitpid")
                            .and_then(|(_, s)| s.exit_status());
                    say(format!("child {}", status.map_or(-1, |s| s)));
                    ExitCode::SUCCESS
                }
            }
        }
        _ => return None,
    })
}
