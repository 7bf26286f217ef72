//! scratch
// scratch: not committed
use abide_sim::strategy::Strategy;
use abide_sim::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let sc = Scenario::from_toml("x", &text).unwrap();
    let strat = Strategy::from_name(&args[2]).unwrap();
    let bin: f64 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(10.0);
    let r = run(&sc, strat).unwrap();
    println!("{:?}", r.row);
    let end = r.row.makespan_s;
    let n = (end / bin).ceil() as usize + 1;
    let mut s = vec![0; n];
    let mut j = vec![0; n];
    for t in &r.timeline.successes {
        s[(t / bin) as usize] += 1;
    }
    for t in &r.timeline.rejections {
        j[(t / bin) as usize] += 1;
    }
    if std::env::var_os("REJ").is_some() {
        println!("rej at {:?}", r.timeline.rejections);
        let mut v = r.timeline.successes.clone();
        v.sort_by(f64::total_cmp);
        println!("last ok {:?}", &v[v.len().saturating_sub(5)..]);
    }
    for i in 0..n.min(80) {
        println!("{:7.1} ok {:4} rej {:4}", i as f64 * bin, s[i], j[i]);
    }
}
// rejections detail
#[allow(dead_code)]
fn _x() {}
