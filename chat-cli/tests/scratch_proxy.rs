//! Scratch (not committed): the real-sim proxy by hand, controlled through a FIFO.
#[path = "real_sim/proxy.rs"]
mod proxy;

use std::io::BufRead;

#[test]
fn by_hand() {
    let upstream: std::net::SocketAddr = std::env::var("UPSTREAM").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut links = Vec::new();
        for index in 0..2u64 {
            let controls = proxy::Controls { upstream: Some(upstream), ..Default::default() };
            let link = proxy::Link::start(controls, sim_tests::scenario::stream(index, "x")).await.unwrap();
            println!("link {index} listens on {}", link.address);
            links.push(link);
        }
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(8);
        std::thread::spawn(move || loop {
            let file = std::fs::File::open("/tmp/manual/ctl").unwrap();
            for line in std::io::BufReader::new(file).lines() {
                sender.blocking_send(line.unwrap()).unwrap();
            }
        });
        while let Some(command) = receiver.recv().await {
            let words: Vec<&str> = command.split_whitespace().collect();
            let link = &links[words[1].parse::<usize>().unwrap()];
            match words[0] {
                "hold" => link.update(|c| c.held = true),
                "release" => link.update(|c| c.held = false),
                "cut" => link.update(|c| { c.cut_to_client = true; c.cut_to_server = true }),
                "cutdown" => link.update(|c| c.cut_to_client = true),
                "mend" => link.update(|c| { c.cut_to_client = false; c.cut_to_server = false }),
                "reset" => link.update(|c| c.reset_per_mille = words[2].parse().unwrap()),
                "freeze" => link.update(|c| c.frozen = true),
                "thaw" => link.update(|c| c.frozen = false),
                "latency" => link.update(|c| c.latency_max = std::time::Duration::from_millis(words[2].parse().unwrap())),
                "quit" => return,
                other => println!("unknown {other}"),
            }
            println!("applied: {command}");
        }
    });
}
