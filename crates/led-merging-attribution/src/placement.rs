//! A model over several devices (`led locate --device cuda:0,cuda:1` or `cuda:0,cpu`): the
//! embedding, each decoder layer, and the final norm with the head are units, placed in order as
//! contiguous ranges, each device's share proportional to its memory budget (docs/scale-out.md).

use tch::Device;

/// The unit of parameter `name`: 0 the embedding, 1 + l decoder layer l, `layers + 1` the final
/// norm and the head.
pub(crate) fn unit_of(name: &str, layers: usize) -> usize {
    if name.contains("embed_tokens") {
        0
    } else if let Some((l, _)) = led_merging_io::decoder_layer(name) {
        1 + l
    } else {
        layers + 1
    }
}

/// Where each unit lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The devices, in order.
    pub devices: Vec<Device>,
    /// The device (index into `devices`) of each unit: embedding, layers, head.
    pub unit_device: Vec<usize>,
    /// Bytes planned on each device.
    pub bytes: Vec<u64>,
}

impl Placement {
    /// Place units of `costs` bytes (embedding, layers, head, in order) over `devices` with
    /// `budgets` bytes each: contiguous ranges, device d's share of the total proportional to its
    /// budget, every device at least one unit while units remain. An error names a device whose
    /// range does not fit its budget.
    pub fn new(
        devices: &[Device],
        budgets: &[u64],
        costs: &[u64],
    ) -> std::result::Result<Self, String> {
        let total: u64 = costs.iter().sum();
        let all: u128 = budgets.iter().map(|&b| b as u128).sum::<u128>().max(1);
        let mut unit_device = Vec::with_capacity(costs.len());
        let (mut d, mut placed, mut on_d) = (0usize, 0u64, 0usize);
        for (u, &c) in costs.iter().enumerate() {
            // Cumulative target through device d, by budget share.
            let through = |d: usize| -> u128 {
                budgets[..=d].iter().map(|&b| b as u128).sum::<u128>() * total as u128 / all
            };
            let left = costs.len() - u;
            let later_devices = devices.len() - 1 - d;
            if d + 1 < devices.len()
                && on_d > 0
                && ((placed + c) as u128 > through(d) || left <= later_devices)
            {
                d += 1;
                on_d = 0;
            }
            unit_device.push(d);
            placed += c;
            on_d += 1;
        }
        let mut bytes = vec![0u64; devices.len()];
        for (u, &dev) in unit_device.iter().enumerate() {
            bytes[dev] += costs[u];
        }
        for (k, (&need, &have)) in bytes.iter().zip(budgets).enumerate() {
            if need > have {
                return Err(format!(
                    "{:?} would hold {need} bytes of weights, gradients and accumulators but has {have}: add a device (a CPU last takes what the GPUs cannot: `cuda:0,cpu`) or raise --max-memory",
                    devices[k]
                ));
            }
        }
        Ok(Placement {
            devices: devices.to_vec(),
            unit_device,
            bytes,
        })
    }

    /// The device of parameter `name` of a model with `layers` decoder layers.
    pub fn device_of(&self, name: &str, layers: usize) -> Device {
        let u = unit_of(name, layers).min(self.unit_device.len().saturating_sub(1));
        self.devices[self.unit_device[u]]
    }

    /// `Cpu: embedding, layers 0–7; Cuda(0): layers 8–15, head`, for logs.
    pub fn describe(&self) -> String {
        let last = self.unit_device.len().saturating_sub(1);
        let mut out = Vec::new();
        for (k, dev) in self.devices.iter().enumerate() {
            let units: Vec<usize> = (0..self.unit_device.len())
                .filter(|&u| self.unit_device[u] == k)
                .collect();
            let mut what = Vec::new();
            if units.contains(&0) {
                what.push("embedding".to_owned());
            }
            let layers: Vec<usize> = units
                .iter()
                .filter(|&&u| u != 0 && u != last)
                .map(|u| u - 1)
                .collect();
            if let (Some(a), Some(b)) = (layers.first(), layers.last()) {
                what.push(if a == b {
                    format!("layer {a}")
                } else {
                    format!("layers {a}–{b}")
                });
            }
            if units.contains(&last) {
                what.push("head".into());
            }
            out.push(format!("{dev:?}: {}", what.join(", ")));
        }
        out.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_budgets_and_cover_every_unit() {
        let two = [Device::Cpu, Device::Cpu];
        // Embedding 4, eight layers of 2, head 4: 24 bytes; equal budgets split it in two.
        let costs = [4, 2, 2, 2, 2, 2, 2, 2, 2, 4];
        let p = Placement::new(&two, &[100, 100], &costs).unwrap();
        assert_eq!(p.unit_device, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(p.bytes, [12, 12]);
        assert_eq!(
            p.describe(),
            "Cpu: embedding, layers 0–3; Cpu: layers 4–7, head"
        );
        assert_eq!(
            p.device_of("model.layers.3.mlp.up_proj.weight", 8),
            Device::Cpu
        );
        // A device with a quarter of the memory gets about a quarter of the model.
        let p = Placement::new(&two, &[25, 75], &costs).unwrap();
        assert_eq!(p.unit_device, [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
        // More devices than units: each unit somewhere, in order.
        let p = Placement::new(&[Device::Cpu; 3], &[10, 10, 10], &[4, 4]).unwrap();
        assert_eq!(p.unit_device, [0, 1]);
        // What does not fit is an error naming the device.
        let err = Placement::new(&two, &[10, 10], &costs).unwrap_err();
        assert!(
            err.contains("would hold 12 bytes") && err.contains("has 10"),
            "{err}"
        );
    }
}
