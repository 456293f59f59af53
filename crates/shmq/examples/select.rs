//! One worker serving two queues and a pipe with `Select`, no thread per object.
//!
//! `cargo run -p shmq --example select`: two producer processes feed the `jobs` and `urgent`
//! queues; a controller process sends commands on a pipe, then "stop". The worker waits on all
//! three at once and handles whichever is ready.

use std::process::Command;
use std::time::Duration;

use shmq::{End, Options, Pipe, PipeEnd, Queue, Select, TryGetError, TryRecvError};

fn child(role: &str, base: &str) -> Result<(), Box<dyn std::error::Error>> {
    match role {
        "jobs" | "urgent" => {
            let q = Queue::open(&format!("{base}-{role}"))?;
            for i in 0..10 {
                // Bounded, so an orphaned producer does not block forever.
                q.put_timeout(format!("{role} {i}"), Duration::from_secs(10))?;
                std::thread::sleep(Duration::from_millis(if role == "jobs" { 1 } else { 3 }));
            }
        }
        "control" => {
            let ctl = PipeEnd::open(&format!("{base}-ctl"), End::B)?;
            ctl.send(b"status")?;
            std::thread::sleep(Duration::from_millis(60));
            ctl.send(b"stop")?;
            assert_eq!(ctl.recv_timeout(Duration::from_secs(10))?, b"stopped");
        }
        _ => unreachable!(),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 {
        return child(&args[1], &args[2]);
    }
    let base = format!("shmq-example-select-{}", std::process::id());
    let opts = Options {
        capacity: 8,
        message_size: 64,
        ..Default::default()
    };
    let jobs = Queue::create(&format!("{base}-jobs"), &opts)?;
    let urgent = Queue::create(&format!("{base}-urgent"), &opts)?;
    let (ctl, peer) = Pipe::create(&format!("{base}-ctl"), &opts)?;
    let me = std::env::current_exe()?;
    let children: Vec<_> = ["jobs", "urgent", "control"]
        .iter()
        .map(|role| Command::new(&me).args([*role, &base]).spawn())
        .collect::<Result<_, _>>()?;
    // Keep end B until the controller's first command shows that it holds end B too:
    // dropping it earlier would make end-of-file final before the controller opened it.
    let mut peer = Some(peer);

    let mut sel = Select::new();
    let j = sel.get(&jobs);
    let u = sel.get(&urgent);
    let c = sel.recv(&ctl);
    let (mut handled, mut stopping) = (0, false);
    while !(stopping && jobs.is_empty() && urgent.is_empty()) {
        let Ok(i) = sel.ready_timeout(Duration::from_secs(1)) else {
            println!("idle for a second");
            continue;
        };
        // Ready is a hint: another consumer could have been faster, so use try_*.
        if i == j || i == u {
            let q = if i == j { &jobs } else { &urgent };
            match q.try_get() {
                Ok(m) => {
                    println!("job: {}", String::from_utf8_lossy(&m));
                    handled += 1;
                }
                Err(TryGetError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
        } else if i == c {
            match ctl.try_recv() {
                Ok(cmd) if cmd == b"stop" => stopping = true,
                Ok(cmd) => {
                    println!("control: {}", String::from_utf8_lossy(&cmd));
                    peer.take();
                }
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Wait until both producers are done, then drain what is left.
    let mut children = children;
    for ch in &mut children[..2] {
        assert!(ch.wait()?.success());
    }
    handled += jobs.try_iter().count() + urgent.try_iter().count();
    ctl.send(b"stopped")?;
    assert!(children[2].wait()?.success());
    println!("handled {handled} jobs");
    assert_eq!(handled, 20);
    for suffix in ["jobs", "urgent", "ctl"] {
        Queue::unlink(&format!("{base}-{suffix}"))?;
    }
    Ok(())
}
